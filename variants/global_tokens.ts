/**
 * Longformer's global tokens.
 * @module
 */
import { type Expr, kvIdx, ne, or, qPos, searchSorted, sub } from "../core/expr.ts";
import { assertArray, assertInteger, fail, MAX_SIZE } from "../core/_check.ts";
import { MAX_TABLE } from "../core/_expr_type.ts";

/**
 * Global tokens, as in Longformer: a query at one of `positions` sees every key, and a key at one
 * of them is seen by every query. Positions are absolute (key indices; a query's is `pos(i)`).
 * Combine with a local pattern: `or(window(w, w), globalTokens([0]))`. Cost: ≈ g/Nk + g/Nq of
 * the Nq×Nk entries for `g` positions.
 *
 * ```
 * globalTokens([1]), Nq = Nk = 4
 * 0 1 0 0
 * 1 1 1 1
 * 0 1 0 0
 * 0 1 0 0
 * ```
 *
 * @param positions Distinct non-negative integers (at most 2^30), in any order; at most 8192.
 * @returns A bool Expr.
 * @throws {TypeError} If `positions` is not an array of numbers.
 * @throws {RangeError} If it is empty or too long, or holds a repeat or a value out of range.
 * @example
 * ```ts
 * import { evaluate, or, window } from "@attend/attend/core";
 * import { globalTokens } from "@attend/attend/variants";
 * const m = or(window(1, 1), globalTokens([0, 7]));
 * const at = (i: number, j: number) => evaluate(m, { qIdx: i, kvIdx: j, qLen: 8, kvLen: 8 });
 * if (!at(4, 0) || !at(4, 7) || at(4, 6) || !at(7, 2) || !at(0, 5)) throw new Error("globals");
 * ```
 */
export function globalTokens(positions: readonly number[]): Expr {
  const context = "create global tokens";
  assertArray(positions, context, "positions", "an array of integers");
  if (positions.length === 0) fail("range", context, "positions", "non-empty", positions);
  if (positions.length > MAX_TABLE) {
    fail("range", context, "positions.length", `at most ${MAX_TABLE}`, positions.length);
  }
  positions.forEach((p, i) => assertInteger(p, context, `positions[${i}]`, 0, MAX_SIZE));
  const sorted = [...positions].sort((x, y) => x - y);
  const repeat = sorted.find((p, i) => i > 0 && p === sorted[i - 1]);
  if (repeat !== undefined) fail("range", context, "positions", "distinct", positions);
  // x is global when the count of positions <= x steps up at x.
  const isGlobal = (x: Expr) => ne(searchSorted(sorted, x), searchSorted(sorted, sub(x, 1)));
  return or(isGlobal(qPos), isGlobal(kvIdx));
}
