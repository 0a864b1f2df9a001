/**
 * Checks new K/V rows against a pool's geometry.
 * @module
 */
import { fail } from "../core/_check.ts";
import { assertDesc, type TensorDesc } from "../core/tensor_desc.ts";
import type { KvPoolLayout } from "./kv_pool_layout.ts";

/**
 * Checks that `k` and `v` describe `tokens` new tokens of one sequence for a pool: shape
 * `[1, kvHeads, tokens, headDim]` (any strides, so views need no copy) and the pool's dtype.
 *
 * @param layout The pool's geometry.
 * @param k The new keys' descriptor (a backend tensor is one).
 * @param v The new values' descriptor.
 * @param tokens How many tokens are appended.
 * @param context What the caller cannot do otherwise, for the message.
 * @throws {TypeError} If `k` or `v` is not a descriptor or has another dtype than the pool.
 * @throws {RangeError} If a shape is not `[1, kvHeads, tokens, headDim]`, naming the dimension.
 * @example
 * ```ts
 * import { assertKvRows, kvPoolLayout } from "@attend/attend/kv";
 * import { tensorDesc } from "@attend/attend/core";
 * import { assertThrows } from "@std/assert";
 * const layout = kvPoolLayout({ numBlocks: 8, blockSize: 4, kvHeads: 2, headDim: 16 });
 * assertKvRows(layout, tensorDesc([1, 2, 3, 16]), tensorDesc([1, 2, 3, 16]), 3);
 * assertThrows(
 *   () => assertKvRows(layout, tensorDesc([1, 4, 3, 16]), tensorDesc([1, 2, 3, 16]), 3),
 *   RangeError,
 *   "k.shape[1] must be 2 (kvHeads), current value is 4",
 * );
 * ```
 */
export function assertKvRows(
  layout: KvPoolLayout,
  k: TensorDesc,
  v: TensorDesc,
  tokens: number,
  context = "append to KV cache",
): void {
  const want = [1, layout.kvHeads, tokens, layout.headDim];
  const names = ["batch", "kvHeads", "tokens", "headDim"];
  for (const [field, desc] of [["k", k], ["v", v]] as const) {
    assertDesc(desc, context, field);
    if (desc.dtype !== layout.dtype) {
      fail(
        "type",
        context,
        `${field}.dtype`,
        `${JSON.stringify(layout.dtype)} (the pool's)`,
        desc.dtype,
      );
    }
    if (desc.shape.length !== 4) {
      fail(
        "range",
        context,
        `${field}.shape`,
        "of rank 4, [1, kvHeads, tokens, headDim]",
        desc.shape,
      );
    }
    want.forEach((size, dim) => {
      if (desc.shape[dim] !== size) {
        fail(
          "range",
          context,
          `${field}.shape[${dim}]`,
          `${size} (${names[dim]})`,
          desc.shape[dim],
        );
      }
    });
  }
}
