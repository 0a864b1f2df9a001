/**
 * CPU flash kernel: query tiles against key tiles with an online softmax. Scratch is one tile
 * of scores plus per-row statistics: O(tile), never `Nq × Nk`. Only listed tiles are visited and the
 * mask is evaluated only on partial tiles, whose hidden keys are left out of `P · V` (so NaN or
 * Inf in their v never reaches the row). The running maximum starts at the most negative finite
 * number and keeps NaN once seen, so NaN and ±Infinity scores give `attention()`'s IEEE results.
 * @module
 */
import { planLayout } from "../../core/plan_layout.ts";
import { firstRow } from "../../core/tile_lists.ts";
import { finishRow } from "./_finish.ts";
import type { KernelContext } from "./_kernel_context.ts";
import { scoreAt, visible } from "./_kernel_context.ts";

/** Runs the flash kernel for every `(b, h)` into `ctx.out` / `ctx.lse`. */
export function runFlash(ctx: KernelContext): void {
  const { batch, heads, qLen, kvLen, valueDim } = ctx.plan.sizes;
  const layout = planLayout(ctx.plan);
  const { tileQ, tileKv } = layout;
  const scores = new Float64Array(tileKv);
  const hidden = new Uint8Array(tileKv);
  const rowMax = new Float64Array(tileQ);
  const rowSum = new Float64Array(tileQ);
  const acc = new Float64Array(tileQ * valueDim);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      ctx.env.b = b, ctx.env.h = h;
      const q = ctx.queries(b, h);
      const { keys, values } = ctx.keysValues(b, h);
      const base = firstRow(layout, heads, b, h);
      for (let row = 0; row < layout.rows; row++) {
        const i0 = row * tileQ, i1 = Math.min(qLen, i0 + tileQ);
        rowMax.fill(-Number.MAX_VALUE), rowSum.fill(0), acc.fill(0);
        const [first, last] = [layout.rowStart[base + row], layout.rowStart[base + row + 1]];
        for (let e = first; e < last; e++) {
          const col = layout.tileCol[e], partial = layout.partial[e] === 1;
          const j0 = col * tileKv, j1 = Math.min(kvLen, j0 + tileKv), count = j1 - j0;
          for (let i = i0; i < i1; i++) {
            let max = -Infinity, seen = 0;
            for (let t = 0; t < count; t++) {
              hidden[t] = partial && !visible(ctx, i, j0 + t) ? 1 : 0;
              if (hidden[t]) continue;
              const s = scoreAt(ctx, q, keys, i, j0 + t);
              scores[t] = s, seen++;
              if (s > max || s !== s) max = s;
            }
            if (seen === 0) continue;
            const r = i - i0;
            const newMax = Math.max(rowMax[r], max);
            const rescale = Math.exp(rowMax[r] - newMax);
            rowMax[r] = newMax;
            let sum = rowSum[r] * rescale;
            const a = r * valueDim;
            for (let d = 0; d < valueDim; d++) acc[a + d] *= rescale;
            for (let t = 0; t < count; t++) {
              const p = hidden[t] ? 0 : Math.exp(scores[t] - newMax);
              scores[t] = p;
              sum += p;
            }
            rowSum[r] = sum;
            const v0 = j0 * valueDim;
            if (seen === count) accumulateRow(acc, a, scores, count, values, v0, valueDim);
            else accumulateVisible(acc, a, scores, hidden, count, values, v0, valueDim);
          }
        }
        for (let i = i0; i < i1; i++) {
          const r = i - i0, o = ((b * heads + h) * qLen + i) * valueDim;
          const { weight, lse } = finishRow(rowMax[r], rowSum[r], ctx.plan.sinkLogits?.[h]);
          for (let d = 0; d < valueDim; d++) ctx.out[o + d] = acc[r * valueDim + d] * weight;
          if (ctx.lse) ctx.lse[(b * heads + h) * qLen + i] = lse;
        }
      }
    }
  }
}

/** `acc[a..a+dv) += Σ p[t] · values[row j0+t]` over the keys that are not hidden. */
function accumulateVisible(
  acc: Float64Array,
  a: number,
  p: Float64Array,
  hidden: Uint8Array,
  count: number,
  values: Float32Array,
  v0: number,
  dv: number,
): void {
  for (let t = 0; t < count; t++) {
    if (hidden[t]) continue;
    const pt = p[t], r = v0 + t * dv;
    for (let d = 0; d < dv; d++) acc[a + d] += pt * values[r + d];
  }
}

/**
 * `acc[a..a+dv) += Σ_t p[t] · values[row j0+t]`, four keys per pass so each accumulator is
 * loaded and stored once per four products.
 */
function accumulateRow(
  acc: Float64Array,
  a: number,
  p: Float64Array,
  count: number,
  values: Float32Array,
  v0: number,
  dv: number,
): void {
  let t = 0;
  for (; t + 3 < count; t += 4) {
    const p0 = p[t], p1 = p[t + 1], p2 = p[t + 2], p3 = p[t + 3];
    const r0 = v0 + t * dv, r1 = r0 + dv, r2 = r1 + dv, r3 = r2 + dv;
    for (let d = 0; d < dv; d++) {
      acc[a + d] += p0 * values[r0 + d] + p1 * values[r1 + d] + p2 * values[r2 + d] +
        p3 * values[r3 + d];
    }
  }
  for (; t < count; t++) {
    const pt = p[t], r = v0 + t * dv;
    for (let d = 0; d < dv; d++) acc[a + d] += pt * values[r + d];
  }
}
