/**
 * CPU paged kernel: each sequence's keys and values gathered once per KV head through its block
 * table (a block id of -1 hides its keys), then each query row's softmax over them with that
 * sequence's `qLen` and `kvLen` in the mask's and modifier's variables. Scratch is one KV head of
 * one sequence plus one row of scores: O(Nk · d), never `Nq × Nk`. The arithmetic is the flash
 * kernel's (running maximum from the lowest finite number, NaN kept once seen, hidden keys left
 * out of `P · V`), so paged and contiguous runs agree.
 * @module
 */
import type { Tensor } from "../backend.ts";
import type { CheckedPages } from "../_check_pages.ts";
import { finishRow } from "./_finish.ts";
import { type KernelContext, scoreAt, visible } from "./_kernel_context.ts";
import { dataOf } from "./_storage.ts";

/** Rows `slots[j]` (or zeros where -1) of KV head `kvh` of a pool, `[length, dim]` row-major. */
function gatherSlots(pool: Tensor, slots: Int32Array, kvh: number): Float32Array {
  const data = dataOf(pool);
  const [, blockSize, , dim] = pool.shape;
  const [sBlock, sSlot, sHead, sDim] = pool.strides;
  const rows = new Float32Array(slots.length * dim);
  slots.forEach((slot, j) => {
    if (slot < 0) return;
    const at = pool.offset + Math.floor(slot / blockSize) * sBlock + (slot % blockSize) * sSlot +
      kvh * sHead;
    for (let d = 0; d < dim; d++) rows[j * dim + d] = data[at + d * sDim];
  });
  return rows;
}

/** Pool slot of each of sequence `s`'s keys, -1 where its block was released. */
function sequenceSlots(pages: CheckedPages, s: number, maxBlocks: number, blockSize: number) {
  return Int32Array.from({ length: pages.lengths[s] }, (_, j) => {
    const block = pages.tables[s * maxBlocks + Math.floor(j / blockSize)];
    return block < 0 ? -1 : block * blockSize + (j % blockSize);
  });
}

/** Runs a paged plan into `ctx.out` / `ctx.lse` (rows past a sequence's queries as empty rows). */
export function runPaged(ctx: KernelContext, k: Tensor, v: Tensor, pages: CheckedPages): void {
  const { batch, heads, kvHeads, qLen, valueDim } = ctx.plan.sizes;
  const { blockSize, maxBlocks } = ctx.plan.paging!;
  const group = heads / kvHeads;
  for (let s = 0; s < batch; s++) {
    const length = pages.lengths[s], asked = pages.queryLengths[s];
    const slots = sequenceSlots(pages, s, maxBlocks, blockSize);
    const scores = new Float64Array(length);
    const hidden = new Uint8Array(length);
    const acc = new Float64Array(valueDim);
    Object.assign(ctx.env, { b: s, qLen: asked, kvLen: length });
    for (let kvh = 0; kvh < kvHeads; kvh++) {
      const keys = gatherSlots(k, slots, kvh), values = gatherSlots(v, slots, kvh);
      for (let h = kvh * group; h < (kvh + 1) * group; h++) {
        ctx.env.h = h;
        // Sequence s's queries are its last `asked` rows of q's Nq, at positions length - asked + i.
        const q = ctx.queries(s, h);
        // Rows past the sequence's queries see no key, as an empty row.
        for (let i = 0; i < qLen; i++) {
          let max = -Number.MAX_VALUE, seen = 0;
          for (let j = 0; j < length && i < asked; j++) {
            hidden[j] = slots[j] < 0 || !visible(ctx, i, j) ? 1 : 0;
            if (hidden[j]) continue;
            const x = scoreAt(ctx, q, keys, i, j);
            scores[j] = x, seen++;
            if (x > max || x !== x) max = x;
          }
          let sum = 0;
          acc.fill(0);
          for (let j = 0; j < length && seen > 0; j++) {
            if (hidden[j]) continue;
            const p = Math.exp(scores[j] - max);
            sum += p;
            for (let d = 0; d < valueDim; d++) acc[d] += p * values[j * valueDim + d];
          }
          const { weight, lse } = finishRow(max, sum, ctx.plan.sinkLogits?.[h]);
          const row = (s * heads + h) * qLen + i;
          for (let d = 0; d < valueDim; d++) ctx.out[row * valueDim + d] = acc[d] * weight;
          if (ctx.lse) ctx.lse[row] = lse;
        }
      }
    }
  }
}
