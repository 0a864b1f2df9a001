import { assertEquals, assertLess, assertLessOrEqual, assertRejects } from "@std/assert";
import { attention, causal, compose, mask } from "../../core/mod.ts";
import { linear } from "../../variants/mod.ts";
import { vjp } from "../../vjp.ts";
import { randomData } from "../_arbitraries.ts";
import { gpu } from "../_webgpu.ts";
import {
  backwardCaseOf,
  dOutOf,
  linearBackwardTests,
  runLinearBackward,
} from "../_linear_backward_properties.ts";
import type { Problem } from "../_linear_properties.ts";
import { ELEMENTWISE_MAPS, performerCase } from "../_linear_oracle.ts";
import {
  LINEAR_GRADIENTS,
  linearBackwardOracle,
  linearBackwardTolerance,
} from "../_linear_backward_oracle.ts";
import { maxAbsError } from "../_oracle.ts";

const ignore = gpu === undefined;

if (gpu) linearBackwardTests(gpu, "webgpu", 24);

const map = (name: string) => ELEMENTWISE_MAPS.find((m) => m.name === name)!;

/** A problem from a few fields over small defaults. */
function problem(
  p: Partial<Omit<Problem, "shape">> & { shape?: Partial<Problem["shape"]> },
): Problem {
  return {
    map: map("elu"),
    causal: true,
    normalize: true,
    dtype: "f32",
    bnhd: false,
    seed: 7,
    ...p,
    shape: {
      batch: 1,
      kvHeads: 1,
      heads: 2,
      qLen: 9,
      kvLen: 9,
      headDim: 4,
      valueDim: 4,
      ...p.shape,
    },
  };
}

/** Runs a problem on the GPU and checks every gradient against the float64 reference. */
async function agrees(p: Problem): Promise<void> {
  const dOut = dOutOf(p);
  const got = await runLinearBackward(gpu!, p, dOut);
  const c = backwardCaseOf(p);
  const ref = linearBackwardOracle(c, dOut);
  const tol = linearBackwardTolerance(c, dOut, ref);
  for (const g of LINEAR_GRADIENTS) {
    assertLessOrEqual(maxAbsError(got[g], ref[g]), tol[g], g);
  }
}

Deno.test({
  name: "webgpu: linear backward with Nq > Nk (causal): rows that see no key get no gradient",
  ignore,
  fn: () => agrees(problem({ shape: { qLen: 13, kvLen: 5 }, decay: [0.9, 0.6], chunk: 2 })),
});

Deno.test({
  name: "webgpu: linear backward with one key, causal and not, GQA",
  ignore,
  fn: async () => {
    const shape = { kvLen: 1, qLen: 6, kvHeads: 2, heads: 4 };
    await agrees(problem({ shape, decay: [0.5, 0.7, 0.9, 1] }));
    await agrees(problem({ shape, causal: false, map: map("relu"), normalize: false }));
  },
});

Deno.test({
  name: "webgpu: linear backward with chunks of one key equals the reference",
  ignore,
  fn: async () => {
    await agrees(problem({ chunk: 1, decay: [0.8, 0.95], shape: { qLen: 7, kvLen: 11 } }));
    await agrees(problem({ chunk: 1, causal: false, map: map("exp(score/2)") }));
  },
});

Deno.test({
  name: "webgpu: linear backward at head dims 24 and 72 (custom map, strided, f16)",
  ignore,
  fn: async () => {
    const shape = { headDim: 24, valueDim: 72, qLen: 6, kvLen: 10 };
    await agrees(problem({ shape, map: map("tanh(score)+1.5"), bnhd: true, chunk: 4 }));
    await agrees(problem({ shape: { ...shape, headDim: 72, valueDim: 24 }, map: map("score²+1") }));
    const p = problem({ shape, dtype: "f16", map: performerCase(12, 3, true), chunk: 3 });
    const dOut = dOutOf(p);
    const got = await runLinearBackward(gpu!, p, dOut);
    const ref = linearBackwardOracle(backwardCaseOf(p), dOut);
    for (const g of ["dq", "dk", "dv"] as const) {
      const top = ref[g].reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      assertLessOrEqual(maxAbsError(got[g], ref[g]), 2e-3 * top + 1e-6, g);
    }
  },
});

/** Peak pool bytes of one causal linear backward pass of length `n`, inputs excluded. */
async function backwardPeak(n: number): Promise<number> {
  const shape = [1, 2, n, 8];
  const [q, k, v, dOut] = [1, 2, 3, 4].map((s) => gpu!.tensor(randomData(2 * n * 8, s), shape));
  const spec = compose(mask(causal()), linear("elu", { chunk: 16, decay: [0.9, 0.8] }))(
    attention(q, k, v),
  );
  const forward = await vjp(gpu!, spec, { q, k, v });
  gpu!.resetPeak();
  const before = gpu!.stats().liveBytes;
  const grads = await forward.backward(dOut);
  const peak = gpu!.stats().peakBytes - before;
  for (const t of [q, k, v, dOut, forward.out, grads.dq, grads.dk, grads.dv]) gpu!.release(t);
  return peak;
}

Deno.test({
  name: "webgpu: linear backward scratch grows linearly in the sequence length",
  ignore,
  fn: async () => {
    const [a, b, c] = [await backwardPeak(256), await backwardPeak(512), await backwardPeak(1024)];
    // Quadratic scratch would quadruple at each doubling; pool buckets round up to 2x at most.
    assertLess(b, 2.5 * a);
    assertLess(c, 2.5 * b);
  },
});

Deno.test({
  name: "webgpu: a refused linear backward leaves the pool as it was",
  ignore,
  fn: async () => {
    const x = gpu!.tensor(randomData(2 * 8 * 4, 5), [1, 2, 8, 4]);
    const spec = compose(mask(causal()), linear("elu"))(attention(x, x, x));
    const forward = await vjp(gpu!, spec, { q: x, k: x, v: x });
    const f16 = gpu!.tensor(new Float32Array(64), [1, 2, 8, 4], "f16");
    const short = gpu!.tensor(new Float32Array(56), [1, 2, 7, 4]);
    const live = gpu!.stats().liveBytes;
    await assertRejects(() => forward.backward(f16), TypeError, "dOut.dtype must be f32");
    await assertRejects(() => forward.backward(short), RangeError, "dOut.shape must be [1,2,8,4]");
    assertEquals(gpu!.stats().liveBytes, live);
    for (const t of [x, f16, short, forward.out]) gpu!.release(t);
  },
});
