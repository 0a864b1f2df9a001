/**
 * fast-check arbitraries: random attention problems and random masks from the algebra, each
 * mask built twice — as an Expr for the library and as a plain predicate for the oracle.
 * @module
 */
import fc from "fast-check";
import type { SpecSizes } from "../core/spec.ts";
import {
  add,
  and,
  causal,
  div,
  eq,
  type Expr,
  ge,
  h,
  kvIdx,
  lt,
  mod,
  mul,
  not,
  or,
  qIdx,
  score,
  tanh,
  window,
} from "../core/mod.ts";
import type { OracleCase } from "./_oracle.ts";

/** A mask in both forms. `pos(i)` is the bottom-right aligned query position. */
export interface MaskCase {
  readonly name: string;
  readonly expr: Expr;
  readonly allowed: (
    b: number,
    head: number,
    i: number,
    j: number,
    nq: number,
    nk: number,
  ) => boolean;
}

/** A score modifier in both forms. */
export interface ScoreModCase {
  readonly name: string;
  readonly expr: Expr;
  readonly modify: (s: number, b: number, head: number, i: number, j: number) => number;
}

const pos = (i: number, nq: number, nk: number) => i + nk - nq;

/** Leaf masks. */
export const maskAtom: fc.Arbitrary<MaskCase> = fc.oneof(
  fc.constant<MaskCase>({
    name: "causal",
    expr: causal(),
    allowed: (_b, _h, i, j, nq, nk) => j <= pos(i, nq, nk),
  }),
  fc.tuple(fc.nat(40), fc.nat(40)).map(([l, r]): MaskCase => ({
    name: `window(${l},${r})`,
    expr: window(l, r),
    allowed: (_b, _h, i, j, nq, nk) => j >= pos(i, nq, nk) - l && j <= pos(i, nq, nk) + r,
  })),
  fc.integer({ min: 1, max: 9 }).map((s): MaskCase => ({
    name: `strided(${s})`,
    expr: eq(mod(kvIdx, s), 0),
    allowed: (_b, _h, _i, j) => j % s === 0,
  })),
  fc.nat(100).map((n): MaskCase => ({
    name: `prefix(${n})`,
    expr: lt(kvIdx, n),
    allowed: (_b, _h, _i, j) => j < n,
  })),
  fc.nat(60).map((n): MaskCase => ({
    name: `headShift(${n})`,
    expr: ge(add(kvIdx, mul(h, 7)), add(qIdx, n)),
    allowed: (_b, head, i, j) => j + head * 7 >= i + n,
  })),
);

/** Masks of depth up to 2 built with and/or/not. */
export const maskCase: fc.Arbitrary<MaskCase> = fc.oneof(
  maskAtom,
  fc.tuple(maskAtom, maskAtom).map(([a, b]): MaskCase => ({
    name: `and(${a.name},${b.name})`,
    expr: and(a.expr, b.expr),
    allowed: (...x) => a.allowed(...x) && b.allowed(...x),
  })),
  fc.tuple(maskAtom, maskAtom).map(([a, b]): MaskCase => ({
    name: `or(${a.name},${b.name})`,
    expr: or(a.expr, b.expr),
    allowed: (...x) => a.allowed(...x) || b.allowed(...x),
  })),
  maskAtom.map((a): MaskCase => ({
    name: `not(${a.name})`,
    expr: not(a.expr),
    allowed: (...x) => !a.allowed(...x),
  })),
);

/** Score modifiers. */
export const scoreModCase: fc.Arbitrary<ScoreModCase> = fc.oneof(
  fc.double({ min: 0.5, max: 5, noNaN: true }).map((c): ScoreModCase => ({
    name: `softcap(${c})`,
    expr: mul(c, tanh(div(score, c))),
    modify: (s) => c * Math.tanh(s / c),
  })),
  fc.double({ min: -0.5, max: 0.5, noNaN: true }).map((slope): ScoreModCase => ({
    name: `bias(${slope})`,
    expr: add(score, mul(slope, kvIdx)),
    modify: (s, _b, _h, _i, j) => s + slope * j,
  })),
);

/** A deterministic PRNG (mulberry32) for bulk data. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random f32 values in [-range, range). */
export function randomData(length: number, seed: number, range = 1): Float32Array {
  const next = prng(seed);
  return Float32Array.from({ length }, () => (next() * 2 - 1) * range);
}

/** Problem sizes. */
export type Shape = SpecSizes;

/** Random sizes within limits (heads with random grouping, odd lengths and dims included). */
export function shapeArb(
  limits: { batch?: number; kvHeads?: number; group?: number; len?: number; dim?: number } = {},
): fc.Arbitrary<Shape> {
  return fc.record({
    batch: fc.integer({ min: 1, max: limits.batch ?? 3 }),
    kvHeads: fc.integer({ min: 1, max: limits.kvHeads ?? 4 }),
    group: fc.integer({ min: 1, max: limits.group ?? 2 }),
    qLen: fc.integer({ min: 1, max: limits.len ?? 150 }),
    kvLen: fc.integer({ min: 1, max: limits.len ?? 150 }),
    headDim: fc.integer({ min: 1, max: limits.dim ?? 96 }),
    sameDim: fc.boolean(),
    valueDim: fc.integer({ min: 1, max: limits.dim ?? 96 }),
  }).map(({ group, sameDim, ...s }) => ({
    ...s,
    heads: s.kvHeads * group,
    valueDim: sameDim ? s.headDim : s.valueDim,
  }));
}

/** Builds the oracle's view of a problem. */
export function oracleCase(
  shape: Shape,
  data: { q: Float32Array; k: Float32Array; v: Float32Array },
  scale: number,
  m?: MaskCase,
  s?: ScoreModCase,
): OracleCase {
  return {
    ...shape,
    ...data,
    scale,
    allowed: m && ((b, head, i, j) => m.allowed(b, head, i, j, shape.qLen, shape.kvLen)),
    modify: s?.modify,
  };
}

/** Random data for a shape. */
export function problemData(
  shape: Shape,
  seed: number,
): { q: Float32Array; k: Float32Array; v: Float32Array } {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = shape;
  return {
    q: randomData(batch * heads * qLen * headDim, seed),
    k: randomData(batch * kvHeads * kvLen * headDim, seed + 1),
    v: randomData(batch * kvHeads * kvLen * valueDim, seed + 2),
  };
}
