import fc from "fast-check";
import { assert, assertEquals, assertLess, assertLessOrEqual } from "@std/assert";
import {
  attention,
  causal,
  type Expr,
  kvIdx,
  lt,
  mask,
  tensorDesc,
  window,
} from "../../core/mod.ts";
import { createCpuBackend } from "../../backends/cpu/mod.ts";
import { createWebGpuBackend } from "../../backends/webgpu/mod.ts";
import { vjp } from "../../vjp.ts";
import { type MaskCase, maskCase, problemData, randomData, type Shape } from "../_arbitraries.ts";
import { maxAbsError } from "../_oracle.ts";
import { backwardOracle, backwardTolerance, GRADIENTS } from "../_backward_oracle.ts";
import { modifierCase } from "../_backward_cases.ts";
import { backwardCase, causalCase, runBackward } from "../_run_backward.ts";
import { roundF16 } from "../_run.ts";
import { gpu } from "../_webgpu.ts";

const cpu = createCpuBackend();
const ignore = gpu === undefined;

// Small shapes: on the software adapter each new head dim is a new pipeline, and compiling
// dominates.
const shapes = fc.record({
  batch: fc.integer({ min: 1, max: 2 }),
  kvHeads: fc.integer({ min: 1, max: 2 }),
  group: fc.integer({ min: 1, max: 2 }),
  qLen: fc.integer({ min: 1, max: 40 }),
  kvLen: fc.integer({ min: 1, max: 70 }),
  headDim: fc.constantFrom(1, 3, 24, 72),
  valueDim: fc.constantFrom(1, 3, 24, 72),
}).map(({ group, ...s }): Shape => ({ ...s, heads: s.kvHeads * group }));

Deno.test({
  name:
    "webgpu backward equals the float64 oracle within twice the plain f32 backward's error, and the cpu backend (masks, modifiers, sinks, GQA, odd dims, Nq != Nk, BNHD views)",
  ignore,
  fn: async () => {
    await fc.assert(
      fc.asyncProperty(
        shapes.chain((shape) =>
          fc.record({
            shape: fc.constant(shape),
            mask: fc.option(maskCase, { nil: undefined }),
            modifier: fc.option(modifierCase(shape.heads), { nil: undefined }),
            sinks: fc.option(
              fc.array(fc.double({ min: -2, max: 2, noNaN: true }), {
                minLength: shape.heads,
                maxLength: shape.heads,
              }),
              { nil: undefined },
            ),
            bnhd: fc.boolean(),
            seed: fc.integer({ min: 1, max: 1 << 30 }),
          })
        ),
        async ({ shape, seed, ...options }) => {
          const data = problemData(shape, seed);
          const dOut = randomData(
            shape.batch * shape.heads * shape.qLen * shape.valueDim,
            seed + 3,
          );
          const c = backwardCase(shape, data, options);
          const ref = backwardOracle(c, dOut);
          const got = await runBackward(gpu!, shape, data, dOut, options);
          const base = await runBackward(cpu, shape, data, dOut, options);
          // The kernel reads the forward's saved f32 out and lse and computes exp in WGSL: so
          // does the plain f32 twin.
          const tol = backwardTolerance(c, dOut, ref, { saved: got, wgslExp: true });
          const actual = { ...got, dSinks: got.dSinks ?? [], dSlopes: got.dSlopes ?? [] };
          const cpuGot = { ...base, dSinks: base.dSinks ?? [], dSlopes: base.dSlopes ?? [] };
          for (const name of GRADIENTS) {
            const expected = name === "dSinks" && !options.sinks ||
                name === "dSlopes" && !options.modifier?.slopes
              ? []
              : ref[name];
            const what = `${name}, mask ${options.mask?.name}, ${options.modifier?.name}`;
            const allowed = tol[name];
            assertLessOrEqual(maxAbsError(actual[name], expected), allowed, what);
            assertLessOrEqual(maxAbsError(actual[name], cpuGot[name]), 2 * allowed, `cpu ${what}`);
          }
        },
      ),
      { numRuns: 8, verbose: true },
    );
  },
});

Deno.test({
  name:
    "webgpu backward with f16 storage matches the oracle on f16-rounded inputs within f16 rounding",
  ignore,
  fn: async () => {
    const shape = {
      batch: 1,
      heads: 4,
      kvHeads: 2,
      qLen: 33,
      kvLen: 72,
      headDim: 72,
      valueDim: 24,
    };
    const raw = problemData(shape, 11);
    const data = { q: roundF16(raw.q), k: roundF16(raw.k), v: roundF16(raw.v) };
    const dOut = roundF16(randomData(4 * 33 * 24, 14));
    const options = { mask: causalCase, sinks: [0.5, -1, 0, 1], dtype: "f16" as const, bnhd: true };
    const c = backwardCase(shape, data, options);
    const ref = backwardOracle(c, dOut);
    const tol = backwardTolerance(c, dOut, ref);
    const got = await runBackward(gpu!, shape, data, dOut, options);
    for (const name of ["dq", "dk", "dv"] as const) {
      // Gradients are stored in f16, and D reads the forward's f16 output: f16 rounding twice.
      const scaleOf = ref[name].reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      assertLessOrEqual(maxAbsError(got[name], ref[name]), tol[name] + scaleOf * 2 ** -10, name);
    }
    assertLessOrEqual(maxAbsError(got.dSinks!, ref.dSinks), tol.dSinks + 1e-3, "dSinks");
  },
});

Deno.test({
  name: "webgpu backward gives identical bits on two runs (GQA, masks, sinks, ALiBi)",
  ignore,
  fn: async () => {
    const shape = {
      batch: 2,
      heads: 4,
      kvHeads: 2,
      qLen: 45,
      kvLen: 71,
      headDim: 24,
      valueDim: 24,
    };
    const data = problemData(shape, 5);
    const dOut = randomData(2 * 4 * 45 * 24, 9);
    const [modifier] = fc.sample(modifierCase(4), { seed: 3, numRuns: 1 });
    const options = { mask: causalCase, modifier, sinks: [0, 1, -1, 0.5] };
    const a = await runBackward(gpu!, shape, data, dOut, options);
    const b = await runBackward(gpu!, shape, data, dOut, options);
    for (const name of ["dq", "dk", "dv"] as const) {
      assertEquals(new Uint8Array(a[name].buffer), new Uint8Array(b[name].buffer), name);
    }
    assertEquals(a.dSinks, b.dSinks);
    assertEquals(a.dSlopes, b.dSlopes);
  },
});

Deno.test({
  name: "webgpu backward gives zero gradients, never NaN, to rows that see no key",
  ignore,
  fn: async () => {
    const shape = { batch: 1, heads: 2, kvHeads: 1, qLen: 5, kvLen: 3, headDim: 8, valueDim: 8 };
    const data = problemData(shape, 3);
    const dOut = randomData(2 * 5 * 8, 4);
    for (const sinks of [undefined, [0.5, -0.5]]) {
      const got = await runBackward(gpu!, shape, data, dOut, { mask: causalCase, sinks });
      assert(got.dq.subarray(0, 16).every((x) => x === 0), "empty rows' dq is zero");
      assert([...got.dq, ...got.dk, ...got.dv].every(Number.isFinite), "no NaN");
      const none: MaskCase = { name: "none", expr: lt(kvIdx, 0), allowed: () => false };
      const empty = await runBackward(gpu!, shape, data, dOut, { mask: none, sinks });
      assert([...empty.dq, ...empty.dk, ...empty.dv].every((x) => x === 0), "all zero");
      if (sinks) assertEquals(empty.dSinks, [0, 0]);
    }
  },
});

/** The pool's peak bytes over one backward pass at `n` queries and keys. */
async function backwardPeak(n: number, hidden: Expr): Promise<number> {
  const shape = { batch: 1, heads: 1, kvHeads: 1, qLen: n, kvLen: n, headDim: 4, valueDim: 4 };
  const data = problemData(shape, 21);
  const [q, k, v] = [data.q, data.k, data.v].map((x) => gpu!.tensor(x, [1, 1, n, 4]));
  const forward = await vjp(gpu!, mask(hidden)(attention(q, k, v)), { q, k, v });
  const dOut = gpu!.tensor(randomData(4 * n, 22), [1, 1, n, 4]);
  await gpu!.sync();
  gpu!.resetPeak();
  const before = gpu!.stats().liveBytes;
  const grads = await forward.backward(dOut);
  const peak = gpu!.stats().peakBytes - before;
  for (const t of [q, k, v, dOut, forward.out, forward.lse!, grads.dq, grads.dk, grads.dv]) {
    gpu!.release(t);
  }
  return peak;
}

Deno.test({
  name: "webgpu backward's scratch grows linearly in N: no Nq × Nk buffer (pool peak bytes)",
  ignore,
  fn: async () => {
    // A window lists O(N) tiles, so everything else must be O(N) too: four times the rows, at
    // most about four times the bytes (pool buckets round up).
    const small = await backwardPeak(512, window(16, 0)),
      large = await backwardPeak(2048, window(16, 0));
    assertLessOrEqual(large, 5 * small, `peak ${small} -> ${large} bytes`);
    // Causal lists (N / tile)² / 2 tiles (the block layout, as in the forward pass): still far
    // below one Nq × Nk f32 buffer (16 MiB at 2048).
    const causalPeak = await backwardPeak(2048, causal());
    assertLess(causalPeak, 2048 * 2048 * 4 / 16, `causal peak ${causalPeak} bytes`);
  },
});

Deno.test({
  name: "webgpu backward runs one plan on two backends, each with its own device's pipelines",
  ignore,
  fn: async () => {
    const other = await createWebGpuBackend();
    try {
      const data = (seed: number) => randomData(2 * 9 * 8, seed);
      const x = tensorDesc([1, 2, 9, 8]);
      const plan = gpu!.plan(mask(causal())(attention(x, x, x, { lse: true })));
      const grads = [];
      for (const backend of [gpu!, other]) {
        const [q, k, v, dOut] = [1, 2, 3, 4].map((s) => backend.tensor(data(s), [1, 2, 9, 8]));
        const { out, lse } = await backend.run(plan, { q, k, v });
        const { dq, dk, dv } = await backend.backward!(plan, { q, k, v, out, lse, dOut });
        grads.push(await backend.readMany([dq, dk, dv]));
      }
      assertEquals(grads[1], grads[0]);
    } finally {
      other.dispose();
    }
  },
});
