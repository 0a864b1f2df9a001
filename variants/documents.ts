/**
 * Packed documents (block-diagonal attention).
 * @module
 */
import {
  add,
  and,
  b,
  eq,
  type Expr,
  ge,
  kvIdx,
  lookup,
  lt,
  min,
  mul,
  qPos,
  searchSorted,
} from "../core/expr.ts";
import { assertArray, assertInteger, fail, MAX_SIZE } from "../core/_check.ts";
import { MAX_TABLE } from "../core/_expr_type.ts";

/**
 * Packed sequences: documents of the given lengths laid end to end, each query seeing only the
 * keys of its own document (block diagonal). Positions past the last document belong to none: a
 * query there sees no key. With one list per batch element, batch element `b` uses list `b` (and
 * elements past the lists see nothing). Combine with `causal()` for packed decoder training:
 * `and(causal(), documents([3, 5]))`. Cost: ≈ Σ lengthᵢ² / (Nq·Nk) of the entries.
 *
 * ```
 * documents([2, 1, 2]), Nq = Nk = 5
 * 1 1 0 0 0
 * 1 1 0 0 0
 * 0 0 1 0 0
 * 0 0 0 1 1
 * 0 0 0 1 1
 * ```
 *
 * Document ends are found by a binary search over a table (one entry per document), so the Expr
 * stays small for any count; tiles inside one document classify as full.
 *
 * @param lengths Positive integers, or one non-empty list of them per batch element; at most
 * 8192 documents and 2^30 positions in all (per-batch lists: batch elements times the longest
 * total, plus one each).
 * @returns A bool Expr.
 * @throws {TypeError} If `lengths` is not an array of numbers or of arrays of numbers.
 * @throws {RangeError} If a list is empty, a length not a positive integer, or the totals too
 * large.
 * @example
 * ```ts
 * import { and, causal, evaluate } from "@attend/attend/core";
 * import { documents } from "@attend/attend/variants";
 * const m = and(causal(), documents([[2, 3], [4]]));
 * const at = (b: number, i: number, j: number) =>
 *   evaluate(m, { b, qIdx: i, kvIdx: j, qLen: 5, kvLen: 5 });
 * if (at(0, 3, 1) || !at(0, 3, 2) || !at(1, 3, 1) || at(1, 4, 4)) throw new Error("documents");
 * ```
 */
export function documents(lengths: readonly number[] | readonly (readonly number[])[]): Expr {
  const context = "create documents";
  assertArray(lengths, context, "lengths", "an array of integers or of arrays of integers");
  if (lengths.length === 0) fail("range", context, "lengths", "non-empty", lengths);
  if (!Array.isArray(lengths[0])) {
    const ends = cumulative(lengths, context, "lengths");
    const doc = (x: Expr) => searchSorted(ends, x);
    return and(ge(qPos, 0), lt(qPos, ends[ends.length - 1]), eq(doc(qPos), doc(kvIdx)));
  }
  const lists = lengths.map((list, i) => {
    assertArray(list, context, `lengths[${i}]`, "an array of integers");
    if (list.length === 0) fail("range", context, `lengths[${i}]`, "non-empty", list);
    return cumulative(list, context, `lengths[${i}]`);
  });
  const totals = lists.map((ends) => ends[ends.length - 1]);
  // Batch element b's positions are shifted by b·stride into one sorted table; keys past the
  // longest total are clamped to its end, so every shifted position stays in range.
  const stride = Math.max(...totals) + 1;
  if (lists.length * stride > MAX_SIZE) {
    fail(
      "range",
      context,
      "lengths",
      `at most ${MAX_SIZE} positions in all`,
      lists.length * stride,
    );
  }
  const ends = lists.flatMap((list, i) => list.map((end) => i * stride + end));
  if (ends.length > MAX_TABLE) {
    fail("range", context, "lengths", `at most ${MAX_TABLE} documents`, ends.length);
  }
  const doc = (x: Expr) => searchSorted(ends, add(mul(b, stride), min(x, stride - 1)));
  return and(ge(qPos, 0), lt(qPos, lookup(totals, b)), eq(doc(qPos), doc(kvIdx)));
}

/** The running totals of a list of positive lengths: each document's end. */
function cumulative(list: readonly unknown[], context: string, field: string): number[] {
  if (list.length > MAX_TABLE) {
    fail("range", context, `${field}.length`, `at most ${MAX_TABLE}`, list.length);
  }
  let total = 0;
  return list.map((n, i) => {
    assertInteger(n, context, `${field}[${i}]`, 1, MAX_SIZE);
    total += n;
    if (total > MAX_SIZE) {
      fail("range", context, `${field}`, `a total of at most ${MAX_SIZE}`, total);
    }
    return total;
  });
}
