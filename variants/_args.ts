/**
 * Argument helpers shared by the mask builders: sizes that are one integer or one per query head,
 * and block indices of positions that may be negative (queries before the first key when
 * `Nq > Nk`).
 * @module
 */
import { add, div, type Expr, headParam, lt, select, sub } from "../core/expr.ts";
import {
  assertArray,
  assertInteger,
  assertObject,
  checkOptions,
  fail,
  MAX_SIZE,
} from "../core/_check.ts";

/**
 * The largest per-head size: per-head values travel as f32 head parameters, and comparing an int
 * with an f32 is exact on every backend only for integers f32 holds exactly (up to 2^24).
 */
export const MAX_PER_HEAD = 2 ** 24;

/**
 * A size given as one integer, or one integer per query head (a `headParam`, so `lower()` checks
 * that there is one per head).
 */
export function perHead(
  value: unknown,
  context: string,
  field: string,
  min: number,
): number | Expr {
  if (!Array.isArray(value)) {
    assertInteger(value, context, field, min, MAX_SIZE);
    return value;
  }
  return headParam(perHeadValues(value, context, field, min));
}

/** The checked values of a per-head list: non-empty integers in `min..2^24`. */
export function perHeadValues(
  value: unknown,
  context: string,
  field: string,
  min: number,
): number[] {
  assertArray(value, context, field, "an integer or an array of integers");
  if (value.length === 0) fail("range", context, field, "non-empty", value);
  value.forEach((v, i) => assertInteger(v, context, `${field}[${i}]`, min, MAX_PER_HEAD));
  return [...value as number[]];
}

/** `⌊x / n⌋` for an int `x` of either sign and a positive `n` (int division truncates). */
export function floorDiv(x: Expr, n: number): Expr {
  return select(lt(x, 0), sub(div(add(x, 1), n), 1), div(x, n));
}

/**
 * Checks an options object of a builder: a plain object whose keys are all known (an unknown one
 * is refused with the nearest known key suggested). Field values are checked by the builder.
 */
export function checkKeys(
  context: string,
  options: unknown,
  keys: readonly string[],
  want: string,
): asserts options is Record<string, unknown> {
  assertObject(options, context, "options", want);
  const names = Object.fromEntries(Object.keys(options).map((k) => [k, undefined]));
  checkOptions(context, "options", names, Object.fromEntries(keys.map((k) => [k, "number"])));
}
