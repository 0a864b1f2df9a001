/**
 * The causal dilated sliding window (Longformer).
 * @module
 */
import {
  and,
  eq,
  type Expr,
  ge,
  h,
  headParam,
  kvIdx,
  lookup,
  lt,
  mod,
  qPos,
  sub,
} from "../core/expr.ts";
import { assertInteger, fail, MAX_SIZE } from "../core/_check.ts";
import { checkKeys, MAX_PER_HEAD, perHeadValues } from "./_args.ts";

/** Options of `dilatedWindow`. */
export interface DilatedWindowOptions {
  /** Keys each query sees, itself included: one for all heads, or one per query head. */
  readonly size: number | readonly number[];
  /** Distance between consecutive visible keys (1: a plain sliding window); scalar or per head. */
  readonly dilation: number | readonly number[];
}

/**
 * Causal dilated window, as in Longformer: each query sees `size` keys spaced `dilation` apart,
 * itself included (`d = pos(i) - j` with `0 <= d < size·dilation` and `d % dilation == 0`), so a
 * head covers `size·dilation` positions at the cost of `size`. Per-head lists give each query
 * head its own size and dilation (Longformer mixes dilations across heads). Cost: ≈ size/Nk of
 * the Nq×Nk entries.
 *
 * ```
 * dilatedWindow({ size: 2, dilation: 2 }), Nq = Nk = 5
 * 1 0 0 0 0
 * 0 1 0 0 0
 * 1 0 1 0 0
 * 0 1 0 1 0
 * 0 0 1 0 1
 * ```
 *
 * @param options `size` and `dilation`: positive integers (their product at most 2^30), or
 * per-head lists (a number is used for every head; products at most 2^24; `lower()` checks
 * that there is one per head).
 * @returns A bool Expr.
 * @throws {TypeError} If `options` is not an object with known keys, or a field is not a number
 * or an array of numbers.
 * @throws {RangeError} If a value is not a positive integer in range, per-head lists differ in
 * length, or the span `size·dilation` is too long.
 * @example
 * ```ts
 * import { evaluate } from "@attend/attend/core";
 * import { dilatedWindow } from "@attend/attend/variants";
 * const m = dilatedWindow({ size: 3, dilation: [1, 2] });
 * const at = (j: number, h: number) => evaluate(m, { h, qIdx: 9, kvIdx: j, qLen: 10, kvLen: 10 });
 * if (!at(7, 0) || at(6, 0) || !at(5, 1) || at(8, 1) || at(3, 1)) throw new Error("dilated");
 * ```
 */
export function dilatedWindow(options: DilatedWindowOptions): Expr {
  const context = "create dilated window";
  checkKeys(context, options, ["size", "dilation"], "an object { size, dilation }");
  const { size, dilation } = options;
  const d = sub(qPos, kvIdx);
  if (!Array.isArray(size) && !Array.isArray(dilation)) {
    assertInteger(size, context, "options.size", 1, MAX_SIZE);
    assertInteger(dilation, context, "options.dilation", 1, MAX_SIZE);
    const span = size * dilation;
    if (span > MAX_SIZE) fail("range", context, "size·dilation", `at most ${MAX_SIZE}`, span);
    return and(ge(d, 0), lt(d, span), eq(mod(d, dilation), 0));
  }
  const heads = Array.isArray(size) ? size.length : (dilation as unknown[]).length;
  const list = (value: unknown, field: string) => {
    if (Array.isArray(value)) return perHeadValues(value, context, field, 1);
    assertInteger(value, context, field, 1, MAX_PER_HEAD);
    return Array<number>(heads).fill(value);
  };
  const [sizes, steps] = [list(size, "options.size"), list(dilation, "options.dilation")];
  if (sizes.length !== steps.length) {
    const want = `options.size.length (${sizes.length})`;
    fail("range", context, "options.dilation.length", want, steps.length);
  }
  const spans = sizes.map((n, i) => n * steps[i]);
  spans.forEach((span, i) => {
    if (span > MAX_PER_HEAD) {
      fail("range", context, `size·dilation of head ${i}`, `at most ${MAX_PER_HEAD}`, span);
    }
  });
  // The span is a head parameter, so lower() checks the head count; the dilation is an int
  // table read, as the remainder must be exact.
  return and(ge(d, 0), lt(d, headParam(spans)), eq(mod(d, lookup(steps, h)), 0));
}
