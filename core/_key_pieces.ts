/**
 * Row spans of structured masks in closed form. Over a box of query rows, a mask's value along
 * the key axis is piecewise constant: true for every row, false for every row, or mixed. For
 * masks built with `and`/`or`/`not` from comparisons that are affine in `kvIdx` (causal, windows,
 * prefix LM, sinks) or compare a query-side value with a monotone key-side one (documents through
 * `searchSorted`), the pieces follow from a few thresholds per comparison: O(1) per row of tiles
 * instead of bisecting the row with interval bounds. Other masks get `undefined`, and the caller
 * bisects.
 * @module
 */
import type { Expr } from "./expr.ts";
import { headParams, readsVar } from "./expr_tree.ts";
import { isBinary, node } from "./_expr_type.ts";
import { type Bounds, compileInterval, type IntervalFn } from "./interval.ts";
import { type CompiledExpr, compileExpr, type ExprEnv } from "./evaluate.ts";

/** A piece's value for every row of the box: false, true, or mixed. */
export type Kind = 0 | 1 | 2;
const FALSE: Kind = 0, TRUE: Kind = 1, MIXED: Kind = 2;

/**
 * A piecewise-constant function of `kvIdx` on `[0, kvLen)`: piece `k` covers
 * `[starts[k], starts[k + 1])` (the last one up to `kvLen`), `starts[0] = 0`.
 */
export interface Pieces {
  readonly starts: number[];
  readonly kinds: Kind[];
}

/**
 * Pieces of a mask over a box of rows (`bounds` without `kvIdx`), or of one comparison;
 * undefined for a box the closed form does not cover (the caller bisects that row).
 */
export type PiecesFn = (bounds: Bounds, kvLen: number) => Pieces | undefined;

const COMPARISONS = new Set(["lt", "le", "gt", "ge", "eq", "ne"]);
const FLIP: Record<string, string> = { lt: "gt", le: "ge", gt: "lt", ge: "le", eq: "eq", ne: "ne" };

/** Pieces with thresholds clipped to `[0, kvLen]` and empty pieces dropped. */
function piecewise(kvLen: number, cuts: number[], kinds: Kind[]): Pieces {
  const starts: number[] = [], kept: Kind[] = [];
  for (let k = 0; k < kinds.length; k++) {
    const from = k === 0 ? 0 : Math.min(kvLen, Math.max(0, cuts[k - 1]));
    const to = k === kinds.length - 1 ? kvLen : Math.min(kvLen, Math.max(0, cuts[k]));
    if (to <= from) continue;
    if (kept.length > 0 && kept[kept.length - 1] === kinds[k]) continue;
    starts.push(from), kept.push(kinds[k]);
  }
  return starts.length > 0 ? { starts, kinds: kept } : { starts: [0], kinds: [FALSE] };
}

/** `kv < t` true for kv below `tTrue`, false from `tFalse` on: `[T, M, F]`. */
function below(kvLen: number, tTrue: number, tFalse: number): Pieces {
  return piecewise(kvLen, [tTrue, tFalse], [TRUE, MIXED, FALSE]);
}

function negate(p: Pieces): Pieces {
  const flip = (k: Kind) => k === MIXED ? k : k === TRUE ? FALSE : TRUE;
  return { starts: p.starts, kinds: p.kinds.map(flip) };
}

/** Kleene `and`/`or` of two piece lists, merged at every breakpoint of either. */
function combine(x: Pieces, y: Pieces, conj: boolean): Pieces {
  const starts: number[] = [], kinds: Kind[] = [];
  let i = 0, j = 0;
  while (i < x.starts.length && j < y.starts.length) {
    const at = Math.max(x.starts[i], y.starts[j]);
    const a = x.kinds[i], b = y.kinds[j];
    const k = conj
      ? (a === FALSE || b === FALSE ? FALSE : a === TRUE && b === TRUE ? TRUE : MIXED)
      : (a === TRUE || b === TRUE ? TRUE : a === FALSE && b === FALSE ? FALSE : MIXED);
    if (kinds.length === 0 || kinds[kinds.length - 1] !== k) starts.push(at), kinds.push(k);
    const nextX = x.starts[i + 1] ?? Infinity, nextY = y.starts[j + 1] ?? Infinity;
    if (nextX <= nextY) i++;
    if (nextY <= nextX) j++;
  }
  return { starts, kinds };
}

/**
 * The constant coefficient of variable `name` in `e` (`e = c·name + rest`), 0 where `e` does not
 * read it, NaN where `e` is not affine in it.
 */
function coefficient(e: Expr, name: "qIdx" | "kvIdx"): number {
  if (!readsVar(e, name)) return 0;
  switch (e.op) {
    case "var":
      return 1;
    case "float":
      return coefficient(e.a, name);
    case "neg":
      return -coefficient(e.a, name);
    case "add":
      return coefficient(e.a, name) + coefficient(e.b, name);
    case "sub":
      return coefficient(e.a, name) - coefficient(e.b, name);
    case "mul":
      if (e.b.op === "lit") return coefficient(e.a, name) * e.b.value;
      if (e.a.op === "lit") return coefficient(e.b, name) * e.a.value;
  }
  return NaN;
}

/**
 * The bounds of `R` in `a - b = α·kvIdx + R` over a box of rows. Where `R` is affine in `qIdx`
 * too (`β·qIdx + γ`), from `γ` evaluated once per batch element, head and sizes: two products a
 * row instead of an interval pass over the tree.
 */
function restBounds(difference: Expr): (bounds: Bounds) => readonly [number, number] {
  const bound = compileInterval(difference);
  const beta = coefficient(difference, "qIdx");
  const unitRead = readsVar(difference, "b") || readsVar(difference, "h") ||
    headParams(difference).length > 0;
  if (!Number.isFinite(beta)) return (bounds) => (bounds.kvIdx = ZERO, bound(bounds));
  const point = compileExpr(difference);
  const env: ExprEnv = { qIdx: 0, kvIdx: 0 };
  let gamma = NaN;
  return (bounds) => {
    const [b0, b1] = bounds.b ?? ZERO, [h0, h1] = bounds.h ?? ZERO;
    if (unitRead && (b0 !== b1 || h0 !== h1)) return (bounds.kvIdx = ZERO, bound(bounds));
    const qLen = bounds.qLen?.[0], kvLen = bounds.kvLen?.[0];
    if (
      env.b !== b0 || env.h !== h0 || env.qLen !== qLen || env.kvLen !== kvLen || !(gamma === gamma)
    ) {
      env.b = b0, env.h = h0, env.qLen = qLen, env.kvLen = kvLen;
      gamma = point(env);
    }
    const [q0, q1] = bounds.qIdx!;
    const x = beta * q0 + gamma, y = beta * q1 + gamma;
    return x <= y ? [x, y] : [y, x];
  };
}

/** `cmp(a, b)` with `a - b = α·kvIdx + R`, `α ≠ 0`: thresholds from the bounds of `R`. */
function affineAtom(
  op: string,
  rest: (bounds: Bounds) => readonly [number, number],
  alpha: number,
): PiecesFn {
  return (bounds, kvLen) => {
    let [lo, hi] = rest(bounds);
    let cmp = op;
    if (alpha < 0) [lo, hi, cmp] = [-hi, -lo, FLIP[op]];
    const a = Math.abs(alpha);
    // α·kv + R (cmp) 0  ⟺  kv (cmp) -R/α, for R in [lo, hi].
    switch (cmp) {
      case "lt":
        return below(kvLen, Math.ceil(-hi / a), Math.ceil(-lo / a));
      case "le":
        return below(kvLen, Math.floor(-hi / a) + 1, Math.floor(-lo / a) + 1);
      case "gt":
        return negate(below(kvLen, Math.floor(-hi / a) + 1, Math.floor(-lo / a) + 1));
      case "ge":
        return negate(below(kvLen, Math.ceil(-hi / a), Math.ceil(-lo / a)));
    }
    const from = Math.ceil(-hi / a), to = Math.floor(-lo / a) + 1;
    const at = lo === hi ? TRUE : MIXED;
    const equal = piecewise(kvLen, [from, to], [FALSE, at, FALSE]);
    return cmp === "eq" ? equal : negate(equal);
  };
}

const ZERO: [number, number] = [0, 0];

/** +1 where `e` never decreases as `kvIdx` grows, -1 where it never increases, 0 where it does
 * not read it, NaN where unknown. */
function monotonicity(e: Expr): number {
  if (!readsVar(e, "kvIdx")) return 0;
  const both = (x: number, y: number) => x === 0 ? y : y === 0 || x === y ? x : NaN;
  switch (e.op) {
    case "var":
      return 1;
    case "float":
    case "searchSorted":
      return monotonicity(e.a);
    case "neg":
      return -monotonicity(e.a);
    case "add":
    case "min":
    case "max":
      return both(monotonicity(e.a), monotonicity(e.b));
    case "sub":
      return both(monotonicity(e.a), -monotonicity(e.b));
    case "mul":
    case "div":
      if (e.b.op === "lit" && (e.op === "mul" || e.b.value !== 0)) {
        return monotonicity(e.a) * Math.sign(e.b.value);
      }
      if (e.op === "mul" && e.a.op === "lit") return monotonicity(e.b) * Math.sign(e.a.value);
  }
  return NaN;
}

/**
 * `cmp(c, g)` with `c` free of `kvIdx` and `g` reading only `kvIdx` (and fixed sizes) and monotone
 * in it: thresholds by binary search on `g`, remembered per value within one box's unit.
 */
function monotoneAtom(
  op: string,
  query: IntervalFn,
  key: CompiledExpr,
  sign: number,
  keyReadsUnit: boolean,
): PiecesFn {
  const env: ExprEnv = {};
  const firsts = [new Map<number, number>(), new Map<number, number>()];
  return (bounds, kvLen) => {
    const [b0, b1] = bounds.b ?? ZERO, [h0, h1] = bounds.h ?? ZERO;
    // A key side that reads b or h is one function only for one batch element and head.
    if (keyReadsUnit && (b0 !== b1 || h0 !== h1)) return undefined;
    const qLen = bounds.qLen?.[0];
    if (env.b !== b0 || env.h !== h0 || env.qLen !== qLen || env.kvLen !== kvLen) {
      firsts.forEach((m) => m.clear());
      env.b = b0, env.h = h0, env.kvLen = kvLen, env.qLen = qLen;
    }
    const g = (kv: number) => (env.kvIdx = kv, sign * key(env));
    /** The first kv with `g(kv) >= x` (`orEqual`) or `g(kv) > x`; kvLen if none. */
    const first = (x: number, orEqual: boolean) => {
      const memo = firsts[orEqual ? 1 : 0];
      const known = memo.get(x);
      if (known !== undefined) return known;
      let lo = 0, hi = kvLen;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (orEqual ? g(mid) >= x : g(mid) > x) hi = mid;
        else lo = mid + 1;
      }
      memo.set(x, lo);
      return lo;
    };
    let [lo, hi] = query(bounds);
    if (sign < 0) [lo, hi] = [-hi, -lo];
    // Now `g(kv) (op) c` with g non-decreasing and c in [lo, hi].
    switch (op) {
      case "lt":
        return below(kvLen, first(lo, true), first(hi, true));
      case "le":
        return below(kvLen, first(lo, false), first(hi, false));
      case "gt":
        return negate(below(kvLen, first(lo, false), first(hi, false)));
      case "ge":
        return negate(below(kvLen, first(lo, true), first(hi, true)));
    }
    const kind = lo === hi ? TRUE : MIXED;
    const equal = piecewise(kvLen, [first(lo, true), first(hi, false)], [
      FALSE,
      kind,
      FALSE,
    ]);
    return op === "eq" ? equal : negate(equal);
  };
}

/** Pieces of one comparison, or undefined when neither closed form applies. */
function atom(e: Extract<Expr, { readonly b: Expr }>, reads: (e: Expr) => boolean) {
  const difference = node({ op: "sub", a: e.a, b: e.b } as Expr);
  const alpha = coefficient(difference, "kvIdx");
  if (Number.isFinite(alpha) && alpha !== 0) return affineAtom(e.op, restBounds(difference), alpha);
  // One side reads kvIdx alone (sizes aside), the other not at all.
  const [keySide, querySide, op] = reads(e.b) ? [e.b, e.a, FLIP[e.op]] : [e.a, e.b, e.op];
  const keyOnly = !["qIdx", "score"].some((v) => readsVar(keySide, v as "qIdx"));
  const sign = monotonicity(keySide);
  if (reads(querySide) || !keyOnly || !(sign === 1 || sign === -1)) return undefined;
  const keyReadsUnit = readsVar(keySide, "b") || readsVar(keySide, "h") ||
    headParams(keySide).length > 0;
  return monotoneAtom(op, compileInterval(querySide), compileExpr(keySide), sign, keyReadsUnit);
}

/**
 * Compiles a mask to its pieces along the key axis over boxes of rows, or returns undefined when
 * some part of it has no closed form.
 */
export function compileKeyPieces(mask: Expr): PiecesFn | undefined {
  const reads = (e: Expr) => readsVar(e, "kvIdx");
  const build = (e: Expr): PiecesFn | undefined => {
    if (!reads(e)) {
      const bound = compileInterval(e);
      return (bounds) => {
        const [lo, hi] = bound(bounds);
        const kind = lo >= 1 ? TRUE : hi <= 0 ? FALSE : MIXED;
        return { starts: [0], kinds: [kind] };
      };
    }
    if (e.op === "not") {
      const inner = build(e.a);
      return inner && ((bounds, kvLen) => {
        const p = inner(bounds, kvLen);
        return p && negate(p);
      });
    }
    if ((e.op === "and" || e.op === "or") && isBinary(e)) {
      const [x, y] = [build(e.a), build(e.b)];
      const conj = e.op === "and";
      return x && y && ((bounds, kvLen) => {
        const p = x(bounds, kvLen), q = p && y(bounds, kvLen);
        return q && combine(p!, q, conj);
      });
    }
    if (COMPARISONS.has(e.op) && isBinary(e)) return atom(e, reads);
    return undefined;
  };
  return build(mask);
}
