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
const TRUE: Interval = [1, 1], FALSE: Interval = [0, 0];

function hull(values: number[]): Interval {
  const finite = values.map((v) => Number.isNaN(v) ? 0 : v);
  return [Math.min(...finite), Math.max(...finite)];
}

function corners(a: Interval, c: Interval, f: (x: number, y: number) => number): Interval {
  const v0 = f(a[0], c[0]), v1 = f(a[0], c[1]), v2 = f(a[1], c[0]), v3 = f(a[1], c[1]);
  if (v0 !== v0 || v1 !== v1 || v2 !== v2 || v3 !== v3) return UNKNOWN; // NaN
  return [Math.min(v0, v1, v2, v3), Math.max(v0, v1, v2, v3)];
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
  return compiled(e)(bounds);
}

/** An Expr's interval interpretation: bounds of its value over a box of variable values. */
export type IntervalFn = (bounds: Bounds) => Interval;

const compiledIntervals = new WeakMap<Expr, IntervalFn>();

/**
 * Compiles an Expr's interval interpretation once (cached per frozen node), for callers that
 * bound it many times, such as block layouts.
 *
 * @param e The expression.
 * @returns `interval(e, ·)` without the per-call checks.
 * @throws {TypeError} If `e` is not a well-formed Expr.
 * @example
 * ```ts
 * import { compileInterval, kvIdx, lt } from "@attend/attend/core";
 * const bound = compileInterval(lt(kvIdx, 4));
 * if (bound({ kvIdx: [0, 3] })[0] !== 1 || bound({ kvIdx: [4, 9] })[1] !== 0) throw new Error();
 * ```
 */
export function compileInterval(e: Expr): IntervalFn {
  assertExpr(e, "compile interval", "e");
  return compiled(e);
}

function compiled(e: Expr): IntervalFn {
  const known = compiledIntervals.get(e);
  if (known) return known;
  const fn = build(e);
  if (Object.isFrozen(e)) compiledIntervals.set(e, fn);
  return fn;
}

function build(e: Expr): IntervalFn {
  switch (e.op) {
    case "var":
      // Named reads, not `bounds[name]`: a keyed load with a changing key is megamorphic in V8.
      switch (e.name) {
        case "qIdx":
          return (bounds) => bounds.qIdx ?? UNKNOWN;
        case "kvIdx":
          return (bounds) => bounds.kvIdx ?? UNKNOWN;
        case "qLen":
          return (bounds) => bounds.qLen ?? UNKNOWN;
        case "kvLen":
          return (bounds) => bounds.kvLen ?? UNKNOWN;
        case "b":
          return (bounds) => bounds.b ?? UNKNOWN;
        case "h":
          return (bounds) => bounds.h ?? UNKNOWN;
        default:
          return (bounds) => bounds.score ?? UNKNOWN;
      }
    case "lit": {
      const value: Interval = [e.value, e.value];
      return () => value;
    }
    case "headParam": {
      const values = e.values;
      return (bounds) => {
        const [lo, hi] = bounds.h ?? [0, values.length - 1];
        return hull(values.slice(Math.max(0, lo), Math.min(values.length - 1, hi) + 1));
      };
    }
    case "lookup": {
      const [values, index] = [e.values, compiled(e.a)];
      return (bounds) => lookupInterval(values, index(bounds));
    }
    case "searchSorted": {
      const [values, x] = [e.values, compiled(e.a)];
      return (bounds) => {
        const [lo, hi] = x(bounds);
        return [countAtMost(values, lo), countAtMost(values, hi)];
      };
    }
    case "select": {
      const [cond, whenTrue, whenFalse] = [compiled(e.cond), compiled(e.a), compiled(e.b)];
      return (bounds) => {
        const c = cond(bounds);
        if (c[0] === 1) return whenTrue(bounds);
        if (c[1] === 0) return whenFalse(bounds);
        const [x, y] = [whenTrue(bounds), whenFalse(bounds)];
        return [Math.min(x[0], y[0]), Math.max(x[1], y[1])];
      };
    }
  }
  const operand = compiled(e.a);
  if (!isBinary(e)) {
    const unary = UNARY[e.op as keyof typeof UNARY] ?? ((a: Interval) => a);
    return (bounds) => unary(operand(bounds));
  }
  const other = compiled(e.b);
  const binary = binaryInterval(e.op, typeOf(e) === "int");
  return (bounds) => binary(operand(bounds), other(bounds));
}

const UNARY = {
  neg: (a: Interval): Interval => [-a[1], -a[0]],
  not: (a: Interval): Interval => [1 - a[1], 1 - a[0]],
  abs: (a: Interval): Interval =>
    a[0] >= 0 ? a : a[1] <= 0 ? [-a[1], -a[0]] : [0, Math.max(-a[0], a[1])],
  tanh: (a: Interval): Interval => [Math.tanh(a[0]), Math.tanh(a[1])],
  exp: (a: Interval): Interval => [Math.exp(a[0]), Math.exp(a[1])],
  log: (a: Interval): Interval => a[0] > 0 ? [Math.log(a[0]), Math.log(a[1])] : UNKNOWN,
};

function binaryInterval(op: string, int: boolean): (a: Interval, c: Interval) => Interval {
  switch (op) {
    case "add":
      return (a, c) => [a[0] + c[0], a[1] + c[1]];
    case "sub":
      return (a, c) => [a[0] - c[1], a[1] - c[0]];
    case "mul":
      return (a, c) => corners(a, c, (x, y) => x * y);
    case "div": {
      const divide = int
        ? (x: number, y: number) => Math.trunc(x / y)
        : (x: number, y: number) => x / y;
      return (a, c) => c[0] <= 0 && c[1] >= 0 ? UNKNOWN : corners(a, c, divide);
    }
    case "mod":
      return (a, c) => modInterval(a, c, int);
    case "min":
      return (a, c) => [Math.min(a[0], c[0]), Math.min(a[1], c[1])];
    case "max":
      return (a, c) => [Math.max(a[0], c[0]), Math.max(a[1], c[1])];
    case "lt":
      return (a, c) => a[1] < c[0] ? TRUE : a[0] >= c[1] ? FALSE : BOOL_UNKNOWN;
    case "le":
      return (a, c) => a[1] <= c[0] ? TRUE : a[0] > c[1] ? FALSE : BOOL_UNKNOWN;
    case "gt":
      return (a, c) => a[0] > c[1] ? TRUE : a[1] <= c[0] ? FALSE : BOOL_UNKNOWN;
    case "ge":
      return (a, c) => a[0] >= c[1] ? TRUE : a[1] < c[0] ? FALSE : BOOL_UNKNOWN;
    case "eq":
      return equality;
    case "ne":
      return (a, c) => UNARY.not(equality(a, c));
    case "and":
      return (a, c) => [Math.min(a[0], c[0]), Math.min(a[1], c[1])];
    case "or":
      return (a, c) => [Math.max(a[0], c[0]), Math.max(a[1], c[1])];
  }
  return () => UNKNOWN;
}

function equality(a: Interval, c: Interval): Interval {
  const same = a[0] === a[1] && c[0] === c[1] && a[0] === c[0];
  const disjoint = a[1] < c[0] || c[1] < a[0];
  return same ? TRUE : disjoint ? FALSE : BOOL_UNKNOWN;
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
