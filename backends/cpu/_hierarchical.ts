/**
 * CPU hierarchical attention (Native Sparse Attention's three branches, see `hierarchical()`):
 * per KV head the block summaries are pooled once; per query row the summaries are scored, the
 * best `topK` expanded to their full keys, and the window read. Memory: the pooled summaries
 * and one row's scores; no Nq×Nk buffer.
 * @module
 */
import { summaryCount, visibleSummaries } from "../../core/hierarchy.ts";
import type { Tensor } from "../backend.ts";
import { type KernelContext, scoreAt } from "./_kernel_context.ts";
import { gatherHead } from "./_storage.ts";

/** Block summaries of one KV head: mean keys `[S, D]` and mean values `[S, Dv]`. */
function pool(rows: Float32Array, dim: number, count: number, block: number, stride: number) {
  const pooled = new Float32Array(count * dim);
  const sum = new Float64Array(dim);
  for (let s = 0; s < count; s++) {
    sum.fill(0);
    for (let j = s * stride; j < s * stride + block; j++) {
      for (let d = 0; d < dim; d++) sum[d] += rows[j * dim + d];
    }
    for (let d = 0; d < dim; d++) pooled[s * dim + d] = sum[d] / block;
  }
  return pooled;
}

/** Reused per-row buffers. */
interface RowScratch {
  readonly scores: Float32Array;
  readonly keys: Int32Array;
  readonly best: Int32Array;
  readonly acc: Float64Array;
}

/**
 * Softmax attention of query row `i` over the listed key rows of `keys`/`values`, added to
 * `out` with `weight`. No key adds nothing.
 */
function attendRows(
  ctx: KernelContext,
  q: Float32Array,
  i: number,
  kv: { keys: Float32Array; values: Float32Array },
  rows: Int32Array,
  count: number,
  weight: number,
  scratch: RowScratch,
  out: Float64Array,
): void {
  if (count === 0) return;
  const { scores, acc } = scratch;
  const dv = ctx.plan.sizes.valueDim;
  let max = -Infinity;
  for (let n = 0; n < count; n++) {
    // Math.max passes NaN on: a NaN score makes the branch NaN.
    max = Math.max(max, scores[n] = scoreAt(ctx, q, kv.keys, i, rows[n]));
  }
  acc.fill(0);
  let sum = 0;
  for (let n = 0; n < count; n++) {
    const p = max === -Infinity ? 0 : Math.exp(scores[n] - max);
    sum += p;
    const at = rows[n] * dv;
    for (let d = 0; d < dv; d++) acc[d] += p * kv.values[at + d];
  }
  if (sum <= 0) return;
  for (let d = 0; d < dv; d++) out[d] += weight * (acc[d] / sum);
}

/**
 * The `topK` summaries with the highest scores among the first `seen` (ties: the earlier), in
 * ascending order, into `best`; returns how many.
 */
function selectSummaries(scores: Float32Array, seen: number, topK: number, best: Int32Array) {
  let kept = 0;
  for (let s = 0; s < seen; s++) {
    let at = kept < topK ? kept++ : topK;
    // Insertion into `best`, kept sorted by descending score: strictly better moves up.
    while (at > 0 && scores[s] > scores[best[at - 1]]) {
      if (at < topK) best[at] = best[at - 1];
      at--;
    }
    if (at < topK) best[at] = s;
  }
  best.subarray(0, kept).sort();
  return kept;
}

/** Runs hierarchical attention into `ctx.out`. */
export function runHierarchical(ctx: KernelContext, gates?: Tensor): void {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = ctx.plan.sizes;
  const { window, block, stride, topK, weights } = ctx.plan.hierarchy!;
  const count = summaryCount(kvLen, block, stride);
  const span = Math.max(count, Math.min(kvLen, Math.max(window, topK * block)));
  const scratch: RowScratch = {
    scores: new Float32Array(span),
    keys: new Int32Array(span),
    best: new Int32Array(topK),
    acc: new Float64Array(valueDim),
  };
  const summaryRows = Int32Array.from({ length: count }, (_, s) => s);
  const out = new Float64Array(valueDim);
  let pooled: { at: number; keys: Float32Array; values: Float32Array } | undefined;
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const q = ctx.queries(b, h);
      const kv = ctx.keysValues(b, h);
      const kvHead = b * kvHeads + Math.floor(h / (heads / kvHeads));
      if (pooled?.at !== kvHead) {
        pooled = {
          at: kvHead,
          keys: pool(kv.keys, headDim, count, block, stride),
          values: pool(kv.values, valueDim, count, block, stride),
        };
      }
      const gate = gates && gatherHead(gates, b, h);
      const weightOf = (branch: 0 | 1 | 2, i: number) =>
        gate
          ? gate[3 * i + branch]
          : [weights!.compressed, weights!.selected, weights!.window][branch][h];
      for (let i = 0; i < qLen; i++) {
        const p = kvLen - qLen + i;
        out.fill(0);
        if (p >= 0) {
          const seen = visibleSummaries(p, block, stride, count);
          attendRows(ctx, q, i, pooled, summaryRows, seen, weightOf(0, i), scratch, out);
          // The compressed branch left the summaries' scores in scratch.scores.
          const chosen = selectSummaries(scratch.scores, seen, topK, scratch.best);
          let keys = 0;
          for (let n = 0, covered = 0; n < chosen; n++) {
            const start = scratch.best[n] * stride;
            for (let j = Math.max(start, covered); j < start + block; j++) scratch.keys[keys++] = j;
            covered = start + block;
          }
          attendRows(ctx, q, i, kv, scratch.keys, keys, weightOf(1, i), scratch, out);
          const first = Math.max(0, p - window + 1);
          for (let j = first; j <= p; j++) scratch.keys[j - first] = j;
          attendRows(ctx, q, i, kv, scratch.keys, p + 1 - first, weightOf(2, i), scratch, out);
        }
        ctx.out.set(out, ((b * heads + h) * qLen + i) * valueDim);
      }
    }
  }
}
