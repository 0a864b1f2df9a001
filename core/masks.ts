/**
 * Built-in masks. Positions are bottom-right aligned: with `Nq != Nk`, query `i` sits at
 * absolute position `Nk - Nq + i`, so the last query always sees the last key.
 * @module
 */
import { add, and, type Expr, ge, kvIdx, le, qPos, sub } from "./expr.ts";
import { assertInteger, MAX_SIZE } from "./_check.ts";

/**
 * Causal mask: key `j` is visible to query `i` when `j <= pos(i)`.
 *
 * ```
 * Nq = Nk = 4     Nq = 2, Nk = 4
 * 1 0 0 0         1 1 1 0
 * 1 1 0 0         1 1 1 1
 * 1 1 1 0
 * 1 1 1 1
 * ```
 *
 * @returns A bool Expr.
 * @example
 * ```ts
 * import { causal, evaluate } from "@attend/attend/core";
 * if (evaluate(causal(), { qIdx: 0, kvIdx: 1, qLen: 4, kvLen: 4 })) throw new Error("future key");
 * ```
 */
export function causal(): Expr {
  return le(kvIdx, qPos);
}

/**
 * Window mask: key `j` is visible to query `i` when `pos(i) - left <= j <= pos(i) + right`.
 * `window(n - 1, 0)` is a causal sliding window of `n` keys.
 *
 * ```
 * window(1, 0), Nq = Nk = 4
 * 1 0 0 0
 * 1 1 0 0
 * 0 1 1 0
 * 0 0 1 1
 * ```
 *
 * @param left Keys visible before the query's position.
 * @param right Keys visible after it.
 * @returns A bool Expr.
 * @throws {TypeError} If `left` or `right` is not a number.
 * @throws {RangeError} If `left` or `right` is not an integer in 0..2^30 (the largest length
 * `lower()` accepts: bounds stay inside the kernels' 32-bit position arithmetic).
 * @example
 * ```ts
 * import { evaluate, window } from "@attend/attend/core";
 * const m = window(1, 0);
 * if (evaluate(m, { qIdx: 3, kvIdx: 1, qLen: 4, kvLen: 4 })) throw new Error("outside window");
 * ```
 */
export function window(left: number, right: number): Expr {
  assertInteger(left, "create window", "left", 0, MAX_SIZE);
  assertInteger(right, "create window", "right", 0, MAX_SIZE);
  return and(ge(kvIdx, sub(qPos, left)), le(kvIdx, add(qPos, right)));
}
