/**
 * The float64 reference of hierarchical attention, built explicitly and independently of the
 * kernels: the pooled keys and values as tensors, each query's selection by sorting its summary
 * scores, and each branch as plain masked attention through `_oracle.ts` (whose f32 twin sets
 * the tolerance). Rows whose selection is a near tie (the k-th and (k+1)-th summary scores
 * within `TIE`) are reported, since rounding may rightly choose either block there.
 * @module
 */
import type { SpecSizes } from "../core/spec.ts";
import { maxAbsError, naiveF32, oracle, type OracleCase } from "./_oracle.ts";

/** A hierarchical reference problem. */
export interface HierarchicalCase extends SpecSizes {
  readonly q: ArrayLike<number>;
  readonly k: ArrayLike<number>;
  readonly v: ArrayLike<number>;
  readonly scale: number;
  readonly window: number;
  readonly block: number;
  readonly stride: number;
  readonly topK: number;
  /** Weight of branch `c` (0 compressed, 1 selected, 2 window) for head `h`, query `i`. */
  readonly weight: (b: number, h: number, i: number, c: number) => number;
}

/** Summary scores closer than this make a selection ambiguous. */
const TIE = 1e-4;

/** Reference output and the rows `[b, h, i]` flat index whose selection is a near tie. */
export interface HierarchicalResult {
  readonly out: Float64Array;
  readonly ties: ReadonlySet<number>;
}

function pooled(x: ArrayLike<number>, c: HierarchicalCase, dim: number, count: number) {
  const { batch, kvHeads, kvLen, block, stride } = c;
  const y = new Float64Array(batch * kvHeads * count * dim);
  for (let bh = 0; bh < batch * kvHeads; bh++) {
    for (let s = 0; s < count; s++) {
      for (let d = 0; d < dim; d++) {
        let sum = 0;
        for (let j = s * stride; j < s * stride + block; j++) sum += x[(bh * kvLen + j) * dim + d];
        y[(bh * count + s) * dim + d] = sum / block;
      }
    }
  }
  return y;
}

function reference(c: HierarchicalCase, round: boolean): HierarchicalResult {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim, block, stride, topK } = c;
  const count = kvLen >= block ? Math.floor((kvLen - block) / stride) + 1 : 0;
  const pos = (i: number) => kvLen - qLen + i;
  const visible = (i: number, s: number) => s * stride + block - 1 <= pos(i);
  const f = round ? Math.fround : (x: number) => x;
  const pk = pooled(c.k, c, headDim, count).map(f), pv = pooled(c.v, c, valueDim, count).map(f);
  const run = round ? naiveF32 : oracle;
  const base = { batch, heads, kvHeads, qLen, headDim, valueDim, q: c.q, scale: c.scale };
  const compressed = run({
    ...base,
    kvLen: count,
    k: pk,
    v: pv,
    allowed: (_b, _h, i, s) => visible(i, s),
  });
  // Selection: each row's visible summaries sorted by score, descending (ties: earlier first).
  const selected = new Map<number, Set<number>>();
  const ties = new Set<number>();
  const group = heads / kvHeads;
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < qLen; i++) {
        const row = (b * heads + h) * qLen + i;
        const kh = b * kvHeads + Math.floor(h / group);
        const scores: [number, number][] = [];
        for (let s = 0; s < count && visible(i, s); s++) {
          let dot = 0;
          for (let d = 0; d < headDim; d++) {
            dot += c.q[row * headDim + d] * pk[(kh * count + s) * headDim + d];
          }
          scores.push([dot * c.scale, s]);
        }
        scores.sort((x, y) => y[0] - x[0] || x[1] - y[1]);
        const keys = new Set<number>();
        for (const [, s] of scores.slice(0, topK)) {
          for (let j = s * stride; j < s * stride + block; j++) keys.add(j);
        }
        selected.set(row, keys);
        if (topK > 0 && scores.length > topK) {
          const gap = scores[topK - 1][0] - scores[topK][0];
          if (gap < TIE * (1 + Math.abs(scores[topK][0]))) ties.add(row);
        }
      }
    }
  }
  const full: OracleCase = { ...base, kvLen, k: c.k, v: c.v };
  const chosen = run({
    ...full,
    allowed: (b, h, i, j) => selected.get((b * heads + h) * qLen + i)!.has(j),
  });
  const windowed = run({
    ...full,
    allowed: (_b, _h, i, j) => j <= pos(i) && j > pos(i) - c.window,
  });
  const out = new Float64Array(batch * heads * qLen * valueDim);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < qLen; i++) {
        const at = ((b * heads + h) * qLen + i) * valueDim;
        const w = [0, 1, 2].map((branch) => c.weight(b, h, i, branch));
        for (let d = 0; d < valueDim; d++) {
          out[at + d] = f(
            f(f(w[0] * compressed.out[at + d]) + f(w[1] * chosen.out[at + d])) +
              f(w[2] * windowed.out[at + d]),
          );
        }
      }
    }
  }
  return { out, ties };
}

/** Float64 reference of hierarchical attention. */
export function hierarchicalOracle(c: HierarchicalCase): HierarchicalResult {
  return reference(c, false);
}

/**
 * Largest error of `actual` against the reference over rows whose selection is no near tie, and
 * DESIGN.md's tolerance for it (twice the plain f32 computation's error, plus 1e-6).
 */
export function hierarchicalError(
  c: HierarchicalCase,
  actual: Float32Array,
): { error: number; tolerance: number; ties: number } {
  const ref = hierarchicalOracle(c);
  const naive = reference(c, true);
  const keep = (x: ArrayLike<number>) =>
    Float64Array.from(x).filter((_, n) => !ref.ties.has(Math.floor(n / c.valueDim)));
  const expected = keep(ref.out);
  return {
    error: maxAbsError(keep(actual), expected),
    tolerance: 2 * maxAbsError(keep(naive.out), expected) + 1e-6,
    ties: ref.ties.size,
  };
}
