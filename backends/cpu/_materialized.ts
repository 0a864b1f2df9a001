/**
 * CPU materialized kernel: one head's full `Nq × Nk` f32 score matrix, a row softmax, then
 * `P · V`. The plain baseline, and the only kernel that can return probabilities. Keys a row
 * cannot see get probability 0 and are left out of `P · V`, so NaN or Inf in their k or v never
 * reaches the row; over visible keys the arithmetic is IEEE (see `attention()`).
 * @module
 */
import { finishRow } from "./_finish.ts";
import type { KernelContext } from "./_kernel_context.ts";
import { scoreAt, visible } from "./_kernel_context.ts";

/** Runs the materialized kernel; fills `probs` (`[B, Hq, Nq, Nk]`) when given. */
export function runMaterialized(ctx: KernelContext, probs?: Float32Array): void {
  const { batch, heads, qLen, kvLen, valueDim } = ctx.plan.sizes;
  const scores = new Float32Array(qLen * kvLen);
  const hidden = new Uint8Array(ctx.mask ? qLen * kvLen : 0);
  const acc = new Float32Array(valueDim);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      ctx.env.b = b, ctx.env.h = h;
      const q = ctx.queries(b, h);
      const { keys, values } = ctx.keysValues(b, h);
      for (let i = 0; i < qLen; i++) {
        for (let j = 0; j < kvLen; j++) {
          const at = i * kvLen + j;
          hidden[at] = visible(ctx, i, j) ? 0 : 1;
          scores[at] = hidden[at] ? -Infinity : scoreAt(ctx, q, keys, i, j);
        }
      }
      for (let i = 0; i < qLen; i++) {
        const row = scores.subarray(i * kvLen, (i + 1) * kvLen);
        const hid = hidden.subarray(i * kvLen, (i + 1) * kvLen);
        // Math.max passes NaN on: a NaN score makes the whole row NaN.
        const max = row.reduce((m, s) => Math.max(m, s), -Infinity);
        let sum = 0;
        for (let j = 0; j < kvLen; j++) {
          sum += row[j] = hid[j] || max === -Infinity ? 0 : Math.exp(row[j] - max);
        }
        const { weight, lse } = finishRow(max, sum, ctx.plan.sinkLogits?.[h]);
        for (let j = 0; j < kvLen; j++) row[j] = hid[j] ? 0 : row[j] * weight;
        const head = (b * heads + h) * qLen + i;
        if (probs) probs.set(row, head * kvLen);
        if (ctx.lse) ctx.lse[head] = lse;
        acc.fill(0);
        for (let j = 0; j < kvLen; j++) {
          if (hid[j]) continue;
          const p = row[j], vj = j * valueDim;
          for (let d = 0; d < valueDim; d++) acc[d] += p * values[vj + d];
        }
        ctx.out.set(acc, head * valueDim);
      }
    }
  }
}
