/**
 * Properties every linear-attention backend must have, shared by the CPU and WebGPU test files:
 * random problems (shapes, maps incl. Performer and custom Exprs, decays, chunks, GQA,
 * `Nq != Nk`, f16, strided inputs) against the float64 reference; chunked equals recurrent;
 * pieces with the state carried equal one call.
 * @module
 */
import fc from "fast-check";
import { assertEquals, assertLessOrEqual } from "@std/assert";
import {
  attention,
  causal,
  compose,
  groupHeads,
  linearStateShape,
  mask,
  slice,
} from "../core/mod.ts";
import { repeatKvHeads } from "./_gqa.ts";
import { linear, type LinearOptions } from "../variants/mod.ts";
import type { Backend, Tensor } from "../backends/backend.ts";
import { linearAttend } from "../linear_attend.ts";
import { randomData, type Shape, shapeArb } from "./_arbitraries.ts";
import { bnhdTensor, roundF16 } from "./_run.ts";
import { maxAbsError } from "./_oracle.ts";
import {
  ELEMENTWISE_MAPS,
  type LinearCase,
  linearOracle,
  linearOracleState,
  type MapCase,
  performerCase,
} from "./_linear_oracle.ts";

/** Elementwise maps (built-in and custom Exprs) and Performer features of random sizes. */
export const mapArb: fc.Arbitrary<MapCase> = fc.oneof(
  fc.constantFrom(...ELEMENTWISE_MAPS),
  fc.record({
    features: fc.integer({ min: 1, max: 40 }),
    seed: fc.integer({ min: 0, max: 1000 }),
    orthogonal: fc.boolean(),
  }).map(({ features, seed, orthogonal }) => performerCase(features, seed, orthogonal)),
);

/** One random linear-attention problem. */
export interface Problem {
  readonly shape: Shape;
  readonly map: MapCase;
  readonly causal: boolean;
  /** Per query head, or none. */
  readonly decay?: readonly number[];
  readonly chunk?: number;
  readonly normalize: boolean;
  readonly dtype: "f32" | "f16";
  readonly bnhd: boolean;
  readonly seed: number;
}

/** Random problems: small shapes with GQA and `Nq != Nk`, maps, decays, chunks, f16, strides. */
export const problemArb: fc.Arbitrary<Problem> = fc.record({
  shape: shapeArb({ batch: 2, kvHeads: 2, group: 3, len: 40, dim: 12 }),
  map: mapArb,
  causal: fc.boolean(),
  decays: fc.array(fc.double({ min: 0.3, max: 1, noNaN: true }), { minLength: 6, maxLength: 6 }),
  useDecay: fc.boolean(),
  chunk: fc.option(fc.integer({ min: 1, max: 48 }), { nil: undefined }),
  normalize: fc.boolean(),
  dtype: fc.constantFrom("f32" as const, "f16" as const),
  bnhd: fc.boolean(),
  seed: fc.integer({ min: 0, max: 2 ** 20 }),
}).map(({ decays, useDecay, ...p }) => ({
  ...p,
  // Maps that may reach 0 are ill conditioned under normalization: they run unnormalized.
  normalize: p.normalize && p.map.positive,
  decay: useDecay && p.causal ? decays.slice(0, p.shape.heads) : undefined,
}));

/** Row-major q, k, v of a problem. */
export interface ProblemData {
  readonly q: Float32Array;
  readonly k: Float32Array;
  readonly v: Float32Array;
}

/** Row-major data of a problem, rounded as its storage rounds it. */
export function dataOf(p: Problem): ProblemData {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = p.shape;
  const stored = (x: Float32Array) => p.dtype === "f16" ? roundF16(x) : x;
  return {
    q: stored(randomData(batch * heads * qLen * headDim, p.seed)),
    k: stored(randomData(batch * kvHeads * kvLen * headDim, p.seed + 1)),
    v: stored(randomData(batch * kvHeads * kvLen * valueDim, p.seed + 2)),
  };
}

/** The reference's view of a problem. */
export function caseOf(p: Problem, data: ProblemData): LinearCase {
  const scale = p.shape.headDim > 0 ? 1 / Math.sqrt(p.shape.headDim) : 1;
  return {
    ...p.shape,
    ...data,
    phi: p.map.phi(p.shape.headDim, scale),
    causal: p.causal,
    decay: p.decay,
    normalize: p.normalize,
    epsilon: 1e-6,
  };
}

/** The `linear()` options of a problem. */
export function options(p: Problem): LinearOptions {
  return { decay: p.decay, chunk: p.chunk, normalize: p.normalize };
}

/** Runs a problem (on `given` data, from an input state, when given); returns out and the state. */
export async function run(
  backend: Backend,
  p: Problem,
  overrides: Partial<Problem> = {},
  given: { data?: ProblemData; state?: Float32Array } = {},
): Promise<{ out: Float32Array; state: Float32Array; data: ProblemData }> {
  const q = { ...p, ...overrides };
  const data = given.data ?? dataOf(q);
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = q.shape;
  const make = (x: Float32Array, shape: number[]) =>
    q.bnhd ? bnhdTensor(backend, x, shape, q.dtype) : backend.tensor(x, shape, q.dtype);
  const t = {
    q: make(data.q, [batch, heads, qLen, headDim]),
    k: make(data.k, [batch, kvHeads, kvLen, headDim]),
    v: make(data.v, [batch, kvHeads, kvLen, valueDim]),
  };
  const spec = compose(
    groupHeads(),
    ...(q.causal ? [mask(causal())] : []),
    linear(q.map.map, options(q)),
  )(attention(t.q, t.k, t.v));
  const plan = backend.plan(spec);
  assertEquals(plan.family, "linear");
  const input = given.state && backend.tensor(given.state, linearStateShape(plan));
  const result = await backend.run(plan, { ...t, ...(input ? { state: input } : {}) });
  const [out, state] = await backend.readMany([result.out, result.state!]);
  return { out, state, data };
}

/** Error allowed against the float64 reference: f32 or f16 rounding of the results. */
export function tolerance(ref: ArrayLike<number>, dtype: "f32" | "f16"): number {
  let top = 0;
  for (let i = 0; i < ref.length; i++) top = Math.max(top, Math.abs(ref[i]));
  return (dtype === "f16" ? 2e-3 : 1e-5) * (1 + top);
}

/** Options of `linearPropertyTests()`. */
export interface PropertyOptions {
  /** Fraction of the default runs (slow backends run fewer). */
  readonly scale?: number;
  /** Another backend the outputs and states must also match. */
  readonly reference?: Backend;
}

/**
 * Registers the linear properties for one backend.
 *
 * @param backend The backend under test.
 * @param name Its name in test names.
 * @param opts Run counts and a reference backend.
 */
export function linearPropertyTests(
  backend: Backend,
  name: string,
  opts: PropertyOptions = {},
): void {
  const runs = (n: number) => Math.max(1, Math.round(n * (opts.scale ?? 1)));

  Deno.test(`${name}: linear attention equals the float64 quadratic reference (chunks, maps, decays, GQA, Nq != Nk, f16, strided)`, async () => {
    await fc.assert(
      fc.asyncProperty(problemArb, async (p) => {
        const { out, state, data } = await run(backend, p);
        const c = caseOf(p, data);
        const ref = linearOracle(c);
        assertLessOrEqual(maxAbsError(out, ref), tolerance(ref, p.dtype), p.map.name);
        const features = typeof p.map.map === "object" && "features" in p.map.map
          ? p.map.map.features
          : p.shape.headDim;
        const refState = linearOracleState(c, features);
        assertLessOrEqual(maxAbsError(state, refState), tolerance(refState, "f32"), "state");
        if (opts.reference) {
          // Both within the tolerance of the reference, so within twice of each other.
          const other = await run(opts.reference, p);
          assertLessOrEqual(maxAbsError(out, other.out), 2 * tolerance(ref, p.dtype), "out vs");
          assertLessOrEqual(maxAbsError(state, other.state), 2 * tolerance(refState, "f32"));
        }
      }),
      { numRuns: runs(120), verbose: true },
    );
  });

  Deno.test(`${name}: chunked equals recurrent (chunk 1) for any chunk, dividing N or not`, async () => {
    await fc.assert(
      fc.asyncProperty(problemArb, fc.integer({ min: 2, max: 50 }), async (p, chunk) => {
        const causalP = { ...p, causal: true, dtype: "f32" as const };
        const recurrent = await run(backend, causalP, { chunk: 1 });
        const chunked = await run(backend, causalP, { chunk });
        assertLessOrEqual(maxAbsError(chunked.out, recurrent.out), tolerance(recurrent.out, "f32"));
        assertLessOrEqual(
          maxAbsError(chunked.state, recurrent.state),
          tolerance(recurrent.state, "f32"),
        );
      }),
      { numRuns: runs(60), verbose: true },
    );
  });

  Deno.test(`${name}: a sequence in pieces with the state carried equals one call (causal: every piece; non-causal: the last)`, async () => {
    const arb = fc.record({
      p: problemArb,
      cuts: fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 4 }),
    });
    await fc.assert(
      fc.asyncProperty(arb, async ({ p: base, cuts }) => {
        const n = base.shape.kvLen;
        const shape = { ...base.shape, qLen: n };
        const p = { ...base, shape, dtype: "f32" as const, bnhd: false };
        const whole = await run(backend, p);
        const bounds = [...new Set([0, ...cuts.map((c) => c % (n + 1)), n])].sort((a, b) => a - b);
        const data = dataOf(p);
        const { batch, heads, kvHeads, headDim, valueDim } = shape;
        const full = {
          q: backend.tensor(data.q, [batch, heads, n, headDim]),
          k: backend.tensor(data.k, [batch, kvHeads, n, headDim]),
          v: backend.tensor(data.v, [batch, kvHeads, n, valueDim]),
        };
        let state: Tensor | undefined;
        const outs: Float32Array[] = [];
        for (let s = 0; s + 1 < bounds.length; s++) {
          const [from, to] = [bounds[s], bounds[s + 1]];
          const piece = (t: Tensor) => slice(t, 2, from, to);
          const q = p.causal ? piece(full.q) : full.q;
          const r = await linearAttend(backend, q, piece(full.k), piece(full.v), {
            featureMap: p.map.map,
            causal: p.causal,
            ...options(p),
            ...(state ? { state } : {}),
          });
          state = r.state!;
          outs.push(await backend.read(r.out));
        }
        const finalState = await backend.read(state!);
        assertLessOrEqual(maxAbsError(finalState, whole.state), tolerance(whole.state, "f32"));
        if (p.causal) {
          // Pieces hold queries in sequence order: per (b, h) rows; reassemble [B, H, N, Dv].
          const joined = new Float32Array(whole.out.length);
          let row = 0;
          for (let s = 0; s + 1 < bounds.length; s++) {
            const len = bounds[s + 1] - bounds[s];
            for (let bh = 0; bh < batch * heads; bh++) {
              joined.set(
                outs[s].subarray(bh * len * valueDim, (bh + 1) * len * valueDim),
                (bh * n + row) * valueDim,
              );
            }
            row += len;
          }
          assertLessOrEqual(maxAbsError(joined, whole.out), tolerance(whole.out, "f32"));
        } else if (n > 0) {
          assertLessOrEqual(maxAbsError(outs.at(-1)!, whole.out), tolerance(whole.out, "f32"));
        }
      }),
      { numRuns: runs(60), verbose: true },
    );
  });

  Deno.test(`${name}: GQA equals MHA on repeated KV heads (outputs and states; decays equal or not within a group; with an input state)`, async () => {
    const arb = fc.record({
      p: problemArb,
      group: fc.integer({ min: 2, max: 3 }),
      sameDecay: fc.boolean(),
      withState: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(arb, async ({ p: base, group, sameDecay, withState }) => {
        const heads = base.shape.kvHeads * group;
        const shape = { ...base.shape, heads };
        const decay = base.decay &&
          Array.from(
            { length: heads },
            (_, h) =>
              sameDecay
                ? base.decay![Math.floor(h / group) % base.decay!.length]
                : 0.4 + 0.1 * (h % 6),
          );
        const gqa = { ...base, shape, decay };
        const mha = { ...gqa, shape: { ...shape, kvHeads: heads } };
        const data = dataOf(gqa);
        const repeated = {
          ...data,
          k: repeatKvHeads(data.k, shape, shape.headDim),
          v: repeatKvHeads(data.v, shape, shape.valueDim),
        };
        const features = typeof base.map.map === "object" && "features" in base.map.map
          ? base.map.map.features
          : shape.headDim;
        // A causal state needs no more queries than keys (see checkRunInputs).
        const state = withState && (!base.causal || shape.qLen <= shape.kvLen)
          ? randomData(shape.batch * heads * features * (shape.valueDim + 1), base.seed + 9)
            .map(Math.abs)
          : undefined;
        const a = await run(backend, gqa, {}, { data, state });
        const b = await run(backend, mha, {}, { data: repeated, state });
        assertLessOrEqual(maxAbsError(a.out, b.out), tolerance(b.out, "f32"), "out");
        assertLessOrEqual(maxAbsError(a.state, b.state), tolerance(b.state, "f32"), "state");
      }),
      { numRuns: runs(60), verbose: true },
    );
  });
}
