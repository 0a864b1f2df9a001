/**
 * Properties every backend's linear-attention backward pass must have, shared by the CPU and
 * WebGPU test files: gradients of random problems (maps incl. Performer and custom Exprs, causal
 * chunked and not, decays, GQA, `Nq != Nk`, strided inputs, f16) against the float64 reference
 * within DESIGN.md's tolerance; identical bits across two calls.
 * @module
 */
import fc from "fast-check";
import { assertEquals, assertLessOrEqual } from "@std/assert";
import { attention, causal, compose, groupHeads, mask } from "../core/mod.ts";
import { linear } from "../variants/mod.ts";
import type { Backend, Gradients } from "../backends/backend.ts";
import { vjp } from "../vjp.ts";
import { randomData } from "./_arbitraries.ts";
import { bnhdTensor, roundF16 } from "./_run.ts";
import { maxAbsError } from "./_oracle.ts";
import { caseOf, dataOf, options, type Problem, problemArb } from "./_linear_properties.ts";
import {
  LINEAR_GRADIENTS,
  type LinearBackwardCase,
  linearBackwardOracle,
  linearBackwardTolerance,
} from "./_linear_backward_oracle.ts";

/** Every gradient of a problem, read back. */
export interface LinearBackwardRun {
  readonly dq: Float32Array;
  readonly dk: Float32Array;
  readonly dv: Float32Array;
  readonly dDecay: readonly number[];
}

/** Runs a problem's forward and backward pass through `vjp()` with `dOut`. */
export async function runLinearBackward(
  backend: Backend,
  p: Problem,
  dOut: Float32Array,
): Promise<LinearBackwardRun> {
  const data = dataOf(p);
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = p.shape;
  const make = (x: Float32Array, shape: number[]) =>
    p.bnhd ? bnhdTensor(backend, x, shape, p.dtype) : backend.tensor(x, shape, p.dtype);
  const q = make(data.q, [batch, heads, qLen, headDim]);
  const k = make(data.k, [batch, kvHeads, kvLen, headDim]);
  const v = make(data.v, [batch, kvHeads, kvLen, valueDim]);
  const spec = compose(
    groupHeads(),
    ...(p.causal ? [mask(causal())] : []),
    linear(p.map.map, options(p)),
  )(attention(q, k, v));
  const forward = await vjp(backend, spec, { q, k, v });
  assertEquals(forward.lse, undefined);
  const gradient = make(dOut, [batch, heads, qLen, valueDim]);
  const grads: Gradients = await forward.backward(gradient);
  const [dq, dk, dv] = await backend.readMany([grads.dq, grads.dk, grads.dv]);
  for (const t of [q, k, v, gradient, forward.out, grads.dq, grads.dk, grads.dv]) {
    backend.release(t);
  }
  return { dq, dk, dv, dDecay: grads.dDecay ?? new Array(heads).fill(0) };
}

/** The reference's view of a problem, with the map's pullback. */
export function backwardCaseOf(p: Problem): LinearBackwardCase {
  const scale = p.shape.headDim > 0 ? 1 / Math.sqrt(p.shape.headDim) : 1;
  const { headDim } = p.shape;
  return {
    ...caseOf(p, dataOf(p)),
    pullback: p.map.pullback(headDim, scale),
    f32: (exp) => ({
      phi: p.map.phi(headDim, scale, Math.fround, exp),
      pullback: p.map.pullback(headDim, scale, Math.fround, exp),
    }),
  };
}

/** A problem's `dOut`, rounded as its storage rounds it. */
export function dOutOf(p: Problem): Float32Array {
  const { batch, heads, qLen, valueDim } = p.shape;
  const dOut = randomData(batch * heads * qLen * valueDim, p.seed + 5);
  return p.dtype === "f16" ? roundF16(dOut) : dOut;
}

/** Largest magnitude of a reference array (for f16's relative rounding). */
const top = (x: ArrayLike<number>) => Array.from(x).reduce((m, a) => Math.max(m, Math.abs(a)), 0);

/**
 * Registers the linear backward properties for one backend.
 *
 * @param backend The backend under test.
 * @param name Its name in test names.
 * @param runs Property runs (slow backends run fewer).
 */
export function linearBackwardTests(backend: Backend, name: string, runs: number): void {
  Deno.test(`${name}: linear attention's gradients equal the float64 reference (maps, Performer, causal chunks, decays, GQA, Nq != Nk, f16, strided)`, async () => {
    await fc.assert(
      fc.asyncProperty(problemArb, async (p) => {
        const dOut = dOutOf(p);
        const got = await runLinearBackward(backend, p, dOut);
        const c = backwardCaseOf(p);
        const ref = linearBackwardOracle(c, dOut);
        const tol = linearBackwardTolerance(c, dOut, ref);
        for (const g of LINEAR_GRADIENTS) {
          // f16 storage rounds each stored gradient once more (dDecay is a host number).
          const stored = p.dtype === "f16" && g !== "dDecay" ? 2 ** -10 * top(ref[g]) : 0;
          assertLessOrEqual(maxAbsError(got[g], ref[g]), tol[g] + stored, `${g} (${p.map.name})`);
        }
      }),
      { numRuns: runs, verbose: true },
    );
  });

  Deno.test(`${name}: linear attention's backward pass gives identical bits twice`, async () => {
    const p = fc.sample(problemArb, { numRuns: 1, seed: 20261124 })[0];
    const problem = {
      ...p,
      causal: true,
      decay: [0.9, 0.8, 0.7, 0.95, 1, 0.5].slice(0, p.shape.heads),
    };
    const dOut = dOutOf(problem);
    const [a, b] = [
      await runLinearBackward(backend, problem, dOut),
      await runLinearBackward(backend, problem, dOut),
    ];
    for (const g of LINEAR_GRADIENTS) assertEquals(Array.from(a[g]), Array.from(b[g]), g);
  });
}
