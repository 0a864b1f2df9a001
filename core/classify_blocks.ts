/**
 * The interval interpretation of masks: which tiles of the `qLen × kvLen` score matrix are empty
 * (no allowed key), full (every key allowed) or partial, bounded from interval arithmetic over
 * each tile's index ranges without visiting its elements.
 * @module
 */
import { type Expr, typeOf } from "./expr.ts";
import { assertExpr } from "./expr_tree.ts";
import { isBinary } from "./_expr_type.ts";
import { assertInteger, assertObject, checkOptions, fail } from "./_check.ts";
import { countAtMost, rangeHull } from "./_table.ts";

/** Tile kinds, in the order kernels read them. */
export const BlockKind: Readonly<{ empty: 0; partial: 1; full: 2 }> = Object.freeze(
  { empty: 0, partial: 1, full: 2 } as const,
);
/** A tile kind: 0 empty, 1 partial, 2 full. */
export type BlockKind = typeof BlockKind[keyof typeof BlockKind];

/**
 * Block-sparse data: `kinds[row * cols + col]` classifies query tile `row` against key tile
 * `col`. Tiles cover rows `[row·tileQ, min((row+1)·tileQ, qLen·pack))` and likewise for keys;
 * with `pack > 1`, row `f` is query `⌊f / pack⌋` of one of `pack` interleaved heads.
 */
export interface BlockLayout {
  /** Query rows per tile. */
  readonly tileQ: number;
  /** Key rows per tile. */
  readonly tileKv: number;
  /** Query heads interleaved in one tile's rows (1: one head per tile). */
  readonly pack: number;
  /** Number of query tiles. */
  readonly rows: number;
  /** Number of key tiles. */
  readonly cols: number;
  /** One BlockKind per tile, row-major. */
  readonly kinds: Uint8Array;
}

/** Sizes a mask is classified for. */
export interface ClassifyOptions {
  /** Query rows. */
  readonly qLen: number;
  /** Key rows. */
  readonly kvLen: number;
  /** Batch size (mask is classified over every batch index). */
  readonly batch?: number;
  /** Query heads (mask is classified over every head). */
  readonly heads?: number;
  /** Query rows per tile. */
  readonly tileQ: number;
  /** Key rows per tile. */
  readonly tileKv: number;
  /** Query heads interleaved per row tile (grouped-query packing); 1 when absent. */
  readonly pack?: number;
}

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

/**
 * Classifies every tile of a mask as empty, partial or full.
 *
 * @param mask A bool Expr.
 * @param options Lengths and tile sizes.
 * @returns The block layout.
 * @throws {TypeError} If `mask` is not a bool Expr, or `options` not an object of numbers with
 * known keys.
 * @throws {RangeError} If a length is not a non-negative integer or a tile size not a positive one.
 * @example
 * ```ts
 * import { BlockKind, causal, classifyBlocks } from "@attend/attend/core";
 * // 1 0      tile (0,0) of a 4×4 causal mask with 2×2 tiles is partial,
 * // 1 1 0 0  tile (0,1) empty, tile (1,0) full.
 * const layout = classifyBlocks(causal(), { qLen: 4, kvLen: 4, tileQ: 2, tileKv: 2 });
 * if (layout.kinds[1] !== BlockKind.empty || layout.kinds[2] !== BlockKind.full) {
 *   throw new Error("unexpected layout");
 * }
 * ```
 */
export function classifyBlocks(mask: Expr | undefined, options: ClassifyOptions): BlockLayout {
  const context = "classify blocks";
  if (mask !== undefined) assertExpr(mask, context, "mask", "mask");
  assertObject(options, context, "options");
  const number = "number" as const;
  checkOptions(context, "options", options, {
    qLen: number,
    kvLen: number,
    batch: number,
    heads: number,
    tileQ: number,
    tileKv: number,
    pack: number,
  });
  const { qLen, kvLen, tileQ, tileKv, pack = 1 } = options;
  for (const [field, value] of Object.entries({ qLen, kvLen })) {
    assertInteger(value, context, `options.${field}`, 0);
  }
  for (const [field, value] of Object.entries({ tileQ, tileKv, pack })) {
    assertInteger(value, context, `options.${field}`, 1);
  }
  const rows = Math.ceil((qLen * pack) / tileQ);
  const cols = Math.ceil(kvLen / tileKv);
  const kinds = new Uint8Array(rows * cols).fill(BlockKind.full);
  if (mask) {
    const bounds: Record<string, Interval> = {
      b: [0, Math.max(0, (options.batch ?? 1) - 1)],
      h: [0, Math.max(0, (options.heads ?? 1) - 1)],
      qLen: [qLen, qLen],
      kvLen: [kvLen, kvLen],
    };
    for (let row = 0; row < rows; row++) {
      const last = Math.min(qLen * pack, (row + 1) * tileQ) - 1;
      bounds.qIdx = [Math.floor((row * tileQ) / pack), Math.floor(last / pack)];
      for (let col = 0; col < cols; col++) {
        bounds.kvIdx = [col * tileKv, Math.min(kvLen, (col + 1) * tileKv) - 1];
        const [lo, hi] = intervalOf(mask, bounds);
        kinds[row * cols + col] = lo >= 1
          ? BlockKind.full
          : hi <= 0
          ? BlockKind.empty
          : BlockKind.partial;
      }
    }
  }
  return Object.freeze({ tileQ, tileKv, pack, rows, cols, kinds });
}

/**
 * Fraction of tiles that are not empty (1 for a layout with no tiles).
 *
 * @param layout A block layout.
 * @returns The density in [0, 1].
 * @throws {TypeError} If `layout` has no `kinds` array.
 * @example
 * ```ts
 * import { causal, classifyBlocks, density } from "@attend/attend/core";
 * const d = density(classifyBlocks(causal(), { qLen: 64, kvLen: 64, tileQ: 16, tileKv: 16 }));
 * if (d !== 10 / 16) throw new Error(`density ${d}`);
 * ```
 */
export function density(layout: BlockLayout): number {
  assertObject(layout, "measure density", "layout", "a block layout");
  if (!(layout.kinds instanceof Uint8Array)) {
    fail("type", "measure density", "layout.kinds", "a Uint8Array", layout.kinds);
  }
  if (layout.kinds.length === 0) return 1;
  return layout.kinds.reduce((n, k) => n + (k === BlockKind.empty ? 0 : 1), 0) /
    layout.kinds.length;
}
