/**
 * The interval interpretation of Exprs: bounds of an Expr's value over ranges of its variables,
 * from interval arithmetic and never by visiting elements. Block layouts classify tiles with it,
 * and the CPU kernels bisect partial tiles with it.
 * @module
 */
import { type Expr, typeOf } from "./expr.ts";
import { assertExpr } from "./expr_tree.ts";
import { isBinary } from "./_expr_type.ts";
import { assertObject } from "./_check.ts";
import { countAtMost, rangeHull } from "./_table.ts";

/** A closed interval `[lo, hi]`; bools are intervals within `[0, 1]`. */
export type Interval = readonly [number, number];
/** Intervals of the variables an Expr reads (`b`, `h`, `qIdx`, `kvIdx`, `qLen`, `kvLen`). */
export type Bounds = Record<string, Interval>;

const UNKNOWN: Interval = [-Infinity, Infinity];
const BOOL_UNKNOWN: Interval = [0, 1];

function hull(values: number[]): Interval {
  const finite = values.map((v) => Number.isNaN(v) ? 0 : v);
  return [Math.min(...finite), Math.max(...finite)];
}

function corners(a: Interval, c: Interval, f: (x: number, y: number) => number): Interval {
  const values = [f(a[0], c[0]), f(a[0], c[1]), f(a[1], c[0]), f(a[1], c[1])];
  return values.some(Number.isNaN) ? UNKNOWN : hull(values);
}

/**
 * Bounds of an Expr over boxes of variable values; bools are intervals within [0, 1].
 *
 * @param e The expression.
 * @param bounds An interval per variable; absent ones are unbounded.
 * @returns An interval holding every value `e` takes in the box.
 * @throws {TypeError} If `e` is not a well-formed Expr or `bounds` not an object.
 * @example
 * ```ts
 * import { add, interval, kvIdx } from "@attend/attend/core";
 * const [lo, hi] = interval(add(kvIdx, 1), { kvIdx: [0, 7] });
 * if (lo !== 1 || hi !== 8) throw new Error("expected [1, 8]");
 * ```
 */
export function interval(e: Expr, bounds: Bounds): Interval {
  assertExpr(e, "bound expression", "e");
  assertObject(bounds, "bound expression", "bounds");
  return intervalOf(e, bounds);
}

function intervalOf(e: Expr, bounds: Bounds): Interval {
  switch (e.op) {
    case "var":
      return bounds[e.name] ?? UNKNOWN;
    case "lit":
      return [e.value, e.value];
    case "headParam": {
      const [lo, hi] = bounds.h ?? [0, e.values.length - 1];
      return hull(e.values.slice(Math.max(0, lo), Math.min(e.values.length - 1, hi) + 1));
    }
    case "lookup":
      return lookupInterval(e.values, intervalOf(e.a, bounds));
    case "searchSorted": {
      const [lo, hi] = intervalOf(e.a, bounds);
      return [countAtMost(e.values, lo), countAtMost(e.values, hi)];
    }
    case "select": {
      const c = intervalOf(e.cond, bounds);
      if (c[0] === 1) return intervalOf(e.a, bounds);
      if (c[1] === 0) return intervalOf(e.b, bounds);
      const [x, y] = [intervalOf(e.a, bounds), intervalOf(e.b, bounds)];
      return [Math.min(x[0], y[0]), Math.max(x[1], y[1])];
    }
  }
  const a = intervalOf(e.a, bounds);
  if (!isBinary(e)) {
    switch (e.op) {
      case "neg":
        return [-a[1], -a[0]];
      case "not":
        return [1 - a[1], 1 - a[0]];
      case "abs":
        return a[0] >= 0 ? a : a[1] <= 0 ? [-a[1], -a[0]] : [0, Math.max(-a[0], a[1])];
      case "tanh":
        return [Math.tanh(a[0]), Math.tanh(a[1])];
      case "exp":
        return [Math.exp(a[0]), Math.exp(a[1])];
      case "log":
        return a[0] > 0 ? [Math.log(a[0]), Math.log(a[1])] : UNKNOWN;
      default:
        return a;
    }
  }
  const c = intervalOf(e.b, bounds);
  const int = typeOf(e) === "int";
  switch (e.op) {
    case "add":
      return [a[0] + c[0], a[1] + c[1]];
    case "sub":
      return [a[0] - c[1], a[1] - c[0]];
    case "mul":
      return corners(a, c, (x, y) => x * y);
    case "div":
      if (c[0] <= 0 && c[1] >= 0) return UNKNOWN;
      return corners(a, c, int ? (x, y) => Math.trunc(x / y) : (x, y) => x / y);
    case "mod":
      return modInterval(a, c, int);
    case "min":
      return [Math.min(a[0], c[0]), Math.min(a[1], c[1])];
    case "max":
      return [Math.max(a[0], c[0]), Math.max(a[1], c[1])];
    case "lt":
      return a[1] < c[0] ? [1, 1] : a[0] >= c[1] ? [0, 0] : BOOL_UNKNOWN;
    case "le":
      return a[1] <= c[0] ? [1, 1] : a[0] > c[1] ? [0, 0] : BOOL_UNKNOWN;
    case "gt":
      return a[0] > c[1] ? [1, 1] : a[1] <= c[0] ? [0, 0] : BOOL_UNKNOWN;
    case "ge":
      return a[0] >= c[1] ? [1, 1] : a[1] < c[0] ? [0, 0] : BOOL_UNKNOWN;
    case "eq":
    case "ne": {
      const same = a[0] === a[1] && c[0] === c[1] && a[0] === c[0];
      const disjoint = a[1] < c[0] || c[1] < a[0];
      const isEq: Interval = same ? [1, 1] : disjoint ? [0, 0] : BOOL_UNKNOWN;
      return e.op === "eq" ? isEq : [1 - isEq[1], 1 - isEq[0]];
    }
    case "and":
      return [Math.min(a[0], c[0]), Math.min(a[1], c[1])];
    case "or":
      return [Math.max(a[0], c[0]), Math.max(a[1], c[1])];
  }
  return UNKNOWN;
}

/** Values a table read takes over an index interval; 0 joins them where it reaches outside. */
function lookupInterval(values: readonly number[], index: Interval): Interval {
  const [lo, hi] = [Math.ceil(index[0]), Math.floor(index[1])];
  const last = values.length - 1;
  if (hi < 0 || lo > last || lo > hi) return [0, 0];
  const [min, max] = rangeHull(values, Math.max(0, lo), Math.min(last, hi));
  return lo < 0 || hi > last ? [Math.min(0, min), Math.max(0, max)] : [min, max];
}

function modInterval(a: Interval, m: Interval, int: boolean): Interval {
  const span = Math.max(Math.abs(m[0]), Math.abs(m[1]));
  // Only a zero divisor: an int remainder is 0 by definition, a float one NaN.
  if (span === 0) return int ? [0, 0] : UNKNOWN;
  if (int && m[0] === m[1] && m[0] !== 0 && a[0] >= 0) {
    const base = Math.floor(a[0] / span);
    if (Math.floor(a[1] / span) === base) return [a[0] - base * span, a[1] - base * span];
  }
  const limit = int ? span - 1 : span;
  return [a[0] >= 0 ? 0 : -limit, a[1] <= 0 ? 0 : limit];
}
