import fc from "fast-check";
import { assert, assertEquals, assertLess, assertLessOrEqual } from "@std/assert";
import { kvIdx, lt } from "../../core/mod.ts";
import { createCpuBackend } from "../../backends/cpu/mod.ts";
import { vjp } from "../../vjp.ts";
import { attention, causal, mask } from "../../core/mod.ts";
import { type MaskCase, maskCase, problemData, randomData, type Shape } from "../_arbitraries.ts";
import { maxAbsError } from "../_oracle.ts";
import { backwardOracle, backwardTolerance, GRADIENTS } from "../_backward_oracle.ts";
import { modifierCase } from "../_backward_cases.ts";
import { backwardCase, causalCase, runBackward } from "../_run_backward.ts";
import { roundF16 } from "../_run.ts";

const cpu = createCpuBackend();

const dims = fc.constantFrom(1, 3, 8, 24, 72);
const shapes = fc.record({
  batch: fc.integer({ min: 1, max: 2 }),
  kvHeads: fc.integer({ min: 1, max: 2 }),
  group: fc.integer({ min: 1, max: 3 }),
  qLen: fc.integer({ min: 1, max: 70 }),
  kvLen: fc.integer({ min: 1, max: 140 }),
  headDim: dims,
  valueDim: dims,
}).map(({ group, ...s }): Shape => ({ ...s, heads: s.kvHeads * group }));

Deno.test("cpu backward equals the float64 oracle within twice the plain f32 backward's error (masks, modifiers, sinks, GQA, odd dims, BNHD views, tiles)", async () => {
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
          family: fc.constantFrom("flash" as const, "materialized" as const, undefined),
          tile: fc.option(
            fc.record({ q: fc.integer({ min: 1, max: 40 }), kv: fc.integer({ min: 1, max: 40 }) }),
            { nil: undefined },
          ),
          seed: fc.integer({ min: 1, max: 1 << 30 }),
        })
      ),
      async ({ shape, seed, ...options }) => {
        const data = problemData(shape, seed);
        const dOut = randomData(shape.batch * shape.heads * shape.qLen * shape.valueDim, seed + 3);
        const c = backwardCase(shape, data, options);
        const ref = backwardOracle(c, dOut);
        const tol = backwardTolerance(c, dOut, ref);
        const got = await runBackward(cpu, shape, data, dOut, options);
        const actual = { ...got, dSinks: got.dSinks ?? [], dSlopes: got.dSlopes ?? [] };
        for (const name of GRADIENTS) {
          const expected = name === "dSinks" && !options.sinks ||
              name === "dSlopes" && !options.modifier?.slopes
            ? []
            : ref[name];
          assertLessOrEqual(
            maxAbsError(actual[name], expected),
            tol[name],
            `${name}, ${got.family}, mask ${options.mask?.name}, ${options.modifier?.name}`,
          );
        }
      },
    ),
    { numRuns: 40, verbose: true },
  );
});

Deno.test("cpu backward with f16 storage matches the oracle on f16-rounded inputs within f16 rounding", async () => {
  const shape = { batch: 1, heads: 4, kvHeads: 2, qLen: 33, kvLen: 72, headDim: 72, valueDim: 24 };
  const raw = problemData(shape, 11);
  const data = { q: roundF16(raw.q), k: roundF16(raw.k), v: roundF16(raw.v) };
  const dOut = roundF16(randomData(4 * 33 * 24, 14));
  const options = { mask: causalCase, sinks: [0.5, -1, 0, 1], dtype: "f16" as const };
  const c = backwardCase(shape, data, options);
  const ref = backwardOracle(c, dOut);
  const tol = backwardTolerance(c, dOut, ref);
  const got = await runBackward(cpu, shape, data, dOut, options);
  for (const name of ["dq", "dk", "dv"] as const) {
    // Gradients are stored in f16, and D reads the forward's f16 output: f16 rounding twice.
    const scaleOf = ref[name].reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    assertLessOrEqual(maxAbsError(got[name], ref[name]), tol[name] + scaleOf * 2 ** -10, name);
  }
  assertLessOrEqual(maxAbsError(got.dSinks!, ref.dSinks), tol.dSinks + 1e-3, "dSinks");
});

Deno.test("cpu backward gives identical bits on two runs (GQA, masks, sinks, ALiBi)", async () => {
  const shape = { batch: 2, heads: 6, kvHeads: 2, qLen: 45, kvLen: 131, headDim: 24, valueDim: 24 };
  const data = problemData(shape, 5);
  const dOut = randomData(2 * 6 * 45 * 24, 9);
  const [modifier] = fc.sample(modifierCase(6), { seed: 3, numRuns: 1 });
  const options = { mask: causalCase, modifier, sinks: [0, 1, -1, 0.5, 2, -2] };
  const a = await runBackward(cpu, shape, data, dOut, options);
  const b = await runBackward(cpu, shape, data, dOut, options);
  for (const name of ["dq", "dk", "dv"] as const) {
    assertEquals(new Uint8Array(a[name].buffer), new Uint8Array(b[name].buffer), name);
  }
  assertEquals(a.dSinks, b.dSinks);
  assertEquals(a.dSlopes, b.dSlopes);
});

Deno.test("cpu backward gives zero gradients, never NaN, to rows that see no key", async () => {
  const shape = { batch: 1, heads: 2, kvHeads: 1, qLen: 5, kvLen: 3, headDim: 8, valueDim: 8 };
  const data = problemData(shape, 3);
  const dOut = randomData(2 * 5 * 8, 4);
  // Queries 0 and 1 sit before every key (causal, Nq > Nk); the rest see some.
  for (const sinks of [undefined, [0.5, -0.5]]) {
    const got = await runBackward(cpu, shape, data, dOut, { mask: causalCase, sinks });
    assert(got.dq.subarray(0, 16).every((x) => x === 0), "empty rows' dq is zero");
    assert([...got.dq, ...got.dk, ...got.dv].every(Number.isFinite), "no NaN");
    const none: MaskCase = { name: "none", expr: lt(kvIdx, 0), allowed: () => false };
    const empty = await runBackward(cpu, shape, data, dOut, { mask: none, sinks });
    assert([...empty.dq, ...empty.dk, ...empty.dv].every((x) => x === 0), "all zero");
    if (sinks) assertEquals(empty.dSinks, [0, 0]);
  }
});

Deno.test("cpu backward allocates nothing of Nq × Nk: every array it makes is O(N·d) or a tile", async () => {
  const shape = {
    batch: 1,
    heads: 1,
    kvHeads: 1,
    qLen: 1024,
    kvLen: 1024,
    headDim: 4,
    valueDim: 4,
  };
  const data = problemData(shape, 21);
  const [q, k, v] = [data.q, data.k, data.v].map((x) => cpu.tensor(x, [1, 1, 1024, 4]));
  const forward = await vjp(cpu, mask(causal())(attention(q, k, v)), { q, k, v });
  const dOut = cpu.tensor(randomData(4096, 22), [1, 1, 1024, 4]);
  let largest = 0;
  const originals = [Float64Array, Float32Array, Float16Array, Uint8Array] as const;
  const spies = originals.map((Original) =>
    class extends Original {
      constructor(...args: never[]) {
        super(...(args as []));
        largest = Math.max(largest, (this as unknown as ArrayLike<number>).length);
      }
    }
  );
  const names = ["Float64Array", "Float32Array", "Float16Array", "Uint8Array"] as const;
  names.forEach((name, i) => Object.assign(globalThis, { [name]: spies[i] }));
  try {
    await forward.backward(dOut);
  } finally {
    names.forEach((name, i) => Object.assign(globalThis, { [name]: originals[i] }));
  }
  assert(largest > 0, "the spies saw the allocations");
  assertLess(largest, 1024 * 1024 / 16, `largest array ${largest} elements`);
});
