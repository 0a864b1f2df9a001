/**
 * Low-rank (Linformer) properties shared by the CPU and WebGPU tests. The reference is written
 * independently: `E·K` and `F·V` projected in float64 (in f32, rounding every step, for the plain
 * f32 kernel that sets the tolerance), stored in the problem's dtype, then `tests/_oracle.ts`.
 * @module
 */
import fc from "fast-check";
import { assertLessOrEqual } from "@std/assert";
import { attention, compose, groupHeads, softcap } from "../core/mod.ts";
import { lowRank } from "../variants/mod.ts";
import type { Backend } from "../backends/backend.ts";
import { randomData, type Shape, shapeArb } from "./_arbitraries.ts";
import { bnhdTensor, roundF16 } from "./_run.ts";
import { maxAbsError, naiveF32, oracle, type OracleCase } from "./_oracle.ts";

/** A random low-rank problem. */
export interface LowRankProblem {
  readonly shape: Shape;
  /** Projected rows, `1..Nk-1`. */
  readonly rows: number;
  /** Whether E (and F) are `[Hkv, k, Nk]` rather than shared `[k, Nk]`. */
  readonly ePerHead: boolean;
  readonly fPerHead: boolean;
  readonly dtype: "f32" | "f16";
  readonly bnhd: boolean;
  readonly lse: boolean;
  /** A softcap (a modifier over `score` only, which applies after projection). */
  readonly cap?: number;
  readonly seed: number;
}

/** Problems over random shapes: GQA, `Nq != Nk`, head dims 24 and 72 among others. */
export const lowRankArb: fc.Arbitrary<LowRankProblem> = fc.record({
  shape: shapeArb({ batch: 2, kvHeads: 3, len: 70, dim: 40 }),
  dim: fc.option(fc.constantFrom(24, 72), { nil: undefined }),
  rowsAt: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
  ePerHead: fc.boolean(),
  fPerHead: fc.boolean(),
  dtype: fc.constantFrom("f32" as const, "f16" as const),
  bnhd: fc.boolean(),
  lse: fc.boolean(),
  cap: fc.option(fc.constantFrom(2, 20), { nil: undefined }),
  seed: fc.integer({ min: 0, max: 2 ** 20 }),
}).map(({ shape, dim, rowsAt, ...p }) => {
  const kvLen = Math.max(2, shape.kvLen);
  const headDim = dim ?? shape.headDim;
  const valueDim = dim ?? shape.valueDim;
  return {
    ...p,
    shape: { ...shape, kvLen, headDim, valueDim },
    rows: 1 + Math.floor(rowsAt * (kvLen - 1)),
  };
});

/** Row-major data of a problem: q, k, v and the projections e, f. */
export type LowRankData = Record<"q" | "k" | "v" | "e" | "f", Float32Array>;

/** Row-major data of a problem, rounded as its storage rounds it. */
export function lowRankData(p: LowRankProblem): LowRankData {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = p.shape;
  const stored = (x: Float32Array) => p.dtype === "f16" ? roundF16(x) : x;
  const projection = (perHead: boolean, seed: number) =>
    stored(randomData((perHead ? kvHeads : 1) * p.rows * kvLen, seed, 1 / Math.sqrt(kvLen)));
  return {
    q: stored(randomData(batch * heads * qLen * headDim, p.seed)),
    k: stored(randomData(batch * kvHeads * kvLen * headDim, p.seed + 1)),
    v: stored(randomData(batch * kvHeads * kvLen * valueDim, p.seed + 2)),
    e: projection(p.ePerHead, p.seed + 3),
    f: projection(p.fPerHead, p.seed + 4),
  };
}

/** `P·X` per batch and KV head, summed with `round` at every step, stored in `dtype`. */
function project(
  p: LowRankProblem,
  x: Float32Array,
  m: Float32Array,
  perHead: boolean,
  dim: number,
  round: (x: number) => number,
): Float64Array {
  const { batch, kvHeads, kvLen } = p.shape;
  const rows = p.rows;
  const out = new Float64Array(batch * kvHeads * rows * dim);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < kvHeads; h++) {
      const mBase = perHead ? h * rows * kvLen : 0;
      const xBase = (b * kvHeads + h) * kvLen * dim;
      for (let r = 0; r < rows; r++) {
        for (let d = 0; d < dim; d++) {
          let s = 0;
          for (let j = 0; j < kvLen; j++) {
            s = round(s + round(m[mBase + r * kvLen + j] * x[xBase + j * dim + d]));
          }
          out[((b * kvHeads + h) * rows + r) * dim + d] = s;
        }
      }
    }
  }
  if (p.dtype === "f16") out.set(new Float16Array(out));
  return out;
}

/** The oracle's view of a problem, its projections computed with `round` at every step. */
function caseOf(p: LowRankProblem, data: LowRankData, round: (x: number) => number): OracleCase {
  const { headDim, valueDim } = p.shape;
  const scale = 1 / Math.sqrt(headDim);
  const cap = p.cap;
  return {
    ...p.shape,
    kvLen: p.rows,
    q: data.q,
    k: project(p, data.k, data.e, p.ePerHead, headDim, round),
    v: project(p, data.v, data.f, p.fPerHead, valueDim, round),
    scale,
    modify: cap === undefined ? undefined : (s) => cap * Math.tanh(s / cap),
  };
}

function maxAbs(x: ArrayLike<number>): number {
  let top = 0;
  for (let i = 0; i < x.length; i++) top = Math.max(top, Math.abs(x[i]));
  return top;
}

/**
 * The float64 reference's out and lse, and the tolerance: twice the plain f32 kernel's error
 * plus 1e-6 (DESIGN.md); with f16 storage, plus the effect of a projected row's rounding going
 * the other way (one f16 step, 2^-10, in a value row, or in a key row through the scores).
 */
export function lowRankReference(
  p: LowRankProblem,
  data: LowRankData,
): { out: Float64Array; lse: Float64Array; tolerance: number } {
  const c = caseOf(p, data, (x) => x);
  const ref = oracle(c);
  let tol = 2 * maxAbsError(naiveF32(caseOf(p, data, Math.fround)).out, ref.out) + 1e-6;
  if (p.dtype === "f16") {
    const qSum = maxAbs(data.q) * p.shape.headDim;
    tol += 2 ** -10 * maxAbs(c.v) * (1 + 2 * c.scale * qSum * maxAbs(c.k));
  }
  return { out: ref.out, lse: ref.lse, tolerance: tol };
}

/** Runs a problem through `lowRank()` on a backend; returns out (and lse). */
export async function runLowRank(
  backend: Backend,
  p: LowRankProblem,
  data: LowRankData,
): Promise<{ out: Float32Array; lse?: Float32Array }> {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = p.shape;
  const make = (x: Float32Array, shape: number[]) =>
    p.bnhd ? bnhdTensor(backend, x, shape, p.dtype) : backend.tensor(x, shape, p.dtype);
  const projection = (x: Float32Array, perHead: boolean) =>
    backend.tensor(x, perHead ? [kvHeads, p.rows, kvLen] : [p.rows, kvLen], p.dtype);
  const t = {
    q: make(data.q, [batch, heads, qLen, headDim]),
    k: make(data.k, [batch, kvHeads, kvLen, headDim]),
    v: make(data.v, [batch, kvHeads, kvLen, valueDim]),
    e: projection(data.e, p.ePerHead),
    f: projection(data.f, p.fPerHead),
  };
  const spec = compose(
    groupHeads(),
    ...(p.cap === undefined ? [] : [softcap(p.cap)]),
    lowRank(t.e, t.f),
  )(attention(t.q, t.k, t.v, { lse: p.lse }));
  const result = await backend.run(backend.plan(spec), t);
  const [out, lse] = await backend.readMany([result.out, ...(result.lse ? [result.lse] : [])]);
  for (const x of [...Object.values(t), result.out, result.lse]) if (x) backend.release(x);
  return { out, lse };
}

/**
 * Registers the low-rank properties for one backend.
 *
 * @param backend The backend under test.
 * @param name Its name in test names.
 * @param runs How many random problems.
 */
export function lowRankPropertyTests(backend: Backend, name: string, runs: number): void {
  Deno.test(`${name}: lowRank() equals softmax attention over float64-projected keys and values (shared and per-head E/F, GQA, Nq != Nk, D 24/72, f16, strided, softcap, lse)`, async () => {
    await fc.assert(
      fc.asyncProperty(lowRankArb, async (p) => {
        const data = lowRankData(p);
        const ref = lowRankReference(p, data);
        const { out, lse } = await runLowRank(backend, p, data);
        assertLessOrEqual(maxAbsError(out, ref.out), ref.tolerance, "out");
        if (p.lse) assertLessOrEqual(maxAbsError(lse!, ref.lse), ref.tolerance + 1e-5, "lse");
      }),
      { numRuns: runs, verbose: true },
    );
  });

  Deno.test(`${name}: lowRank() with E = F selecting the first Nk - 1 keys equals attention over those keys`, async () => {
    const [heads, kvLen, dim, rows] = [2, 9, 24, 8];
    const x = randomData(heads * kvLen * dim, 7);
    const t = backend.tensor(x, [1, heads, kvLen, dim]);
    const select = Float32Array.from(
      { length: rows * kvLen },
      (_, i) => i % kvLen === (i / kvLen | 0) ? 1 : 0,
    );
    const e = backend.tensor(select, [rows, kvLen]);
    const spec = lowRank(e, e)(attention(t, t, t));
    const got = await backend.read(
      (await backend.run(backend.plan(spec), { q: t, k: t, v: t, e, f: e })).out,
    );
    const kept = Float32Array.from({ length: heads * rows * dim }, (_, i) => {
      const h = Math.floor(i / (rows * dim)), rest = i % (rows * dim);
      return x[h * kvLen * dim + rest];
    });
    const ref = oracle({
      batch: 1,
      heads,
      kvHeads: heads,
      qLen: kvLen,
      kvLen: rows,
      headDim: dim,
      valueDim: dim,
      q: x,
      k: kept,
      v: kept,
      scale: 1 / Math.sqrt(dim),
    });
    assertLessOrEqual(maxAbsError(got, ref.out), 1e-5);
  });
}
