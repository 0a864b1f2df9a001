/**
 * The causal sliding window.
 * @module
 */
import { and, type Expr, kvIdx, le, lt, qPos, sub } from "../core/expr.ts";
import { perHead } from "./_args.ts";

/**
 * Causal sliding window: each query sees the `size` most recent keys, itself included
 * (`pos(i) - size < j <= pos(i)`). Cost: ≈ size/Nk of the Nq×Nk entries.
 *
 * ```
 * slidingWindow(2), Nq = Nk = 4    slidingWindow([1, 3]), head 1
 * 1 0 0 0                          1 0 0 0
 * 1 1 0 0                          1 1 0 0
 * 0 1 1 0                          1 1 1 0
 * 0 0 1 1                          0 1 1 1
 * ```
 *
 * @param size Keys each query sees: a positive integer (at most 2^30), or one per query head
 * (at most 2^24 each; `lower()` checks that there is one per head).
 * @returns A bool Expr.
 * @throws {TypeError} If `size` is not a number or an array of numbers.
 * @throws {RangeError} If a size is not a positive integer in range, or the array is empty.
 * @example
 * ```ts
 * import { evaluate } from "@attend/attend/core";
 * import { slidingWindow } from "@attend/attend/variants";
 * const m = slidingWindow([1, 4]);
 * const at = (i: number, j: number, h = 0) =>
 *   evaluate(m, { h, qIdx: i, kvIdx: j, qLen: 8, kvLen: 8 });
 * if (at(5, 4) || !at(5, 5) || !at(5, 2, 1) || at(5, 1, 1)) throw new Error("per-head windows");
 * ```
 */
export function slidingWindow(size: number | readonly number[]): Expr {
  const n = perHead(size, "create sliding window", "size", 1);
  return and(le(kvIdx, qPos), lt(sub(qPos, kvIdx), n));
}
