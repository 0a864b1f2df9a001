/**
 * The prefix language-model mask.
 * @module
 */
import { type Expr, kvIdx, le, lt, or, qPos } from "../core/expr.ts";
import { perHead } from "./_args.ts";

/**
 * Prefix LM: the first `prefixLength` keys are visible to every query (the prefix attends
 * bidirectionally), later keys causally (`j < prefixLength` or `j <= pos(i)`). Cost:
 * ≈ (P·Nq + causal entries past the prefix)/(Nq·Nk), about 1/2 + P/(2·Nk) when Nq = Nk.
 *
 * ```
 * prefixLM(2), Nq = Nk = 4
 * 1 1 0 0
 * 1 1 0 0
 * 1 1 1 0
 * 1 1 1 1
 * ```
 *
 * @param prefixLength Keys in the prefix: a non-negative integer (at most 2^30), or one per
 * query head (at most 2^24 each; `lower()` checks that there is one per head).
 * @returns A bool Expr.
 * @throws {TypeError} If `prefixLength` is not a number or an array of numbers.
 * @throws {RangeError} If a length is not a non-negative integer in range, or the array is empty.
 * @example
 * ```ts
 * import { evaluate } from "@attend/attend/core";
 * import { prefixLM } from "@attend/attend/variants";
 * const at = (i: number, j: number) =>
 *   evaluate(prefixLM(2), { qIdx: i, kvIdx: j, qLen: 4, kvLen: 4 });
 * if (!at(0, 1) || at(2, 3) || !at(3, 3)) throw new Error("prefix then causal");
 * ```
 */
export function prefixLM(prefixLength: number | readonly number[]): Expr {
  const n = perHead(prefixLength, "create prefix LM", "prefixLength", 0);
  return or(lt(kvIdx, n), le(kvIdx, qPos));
}
