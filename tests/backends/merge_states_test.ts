/**
 * `mergeStates()`: states over disjoint key ranges merge into the state over their union, on the
 * CPU and WebGPU, f32 and f16, GQA, with empty ranges (rows that saw no key) and sink-free masks.
 * @module
 */
import fc from "fast-check";
import { assert, assertLessOrEqual, assertRejects } from "@std/assert";
import { attend, type Backend, mergeStates, slice } from "../../mod.ts";
import { createCpuBackend } from "../../backends/cpu/mod.ts";
import { randomData } from "../_arbitraries.ts";
import { maxAbsError } from "../_oracle.ts";
import { gpu } from "../_webgpu.ts";

const caseArb = fc.record({
  heads: fc.constantFrom(1, 2, 4),
  group: fc.constantFrom(1, 2),
  qLen: fc.integer({ min: 1, max: 9 }),
  cuts: fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 2, maxLength: 4 }),
  dim: fc.constantFrom(1, 8, 24),
  valueDim: fc.constantFrom(0, 4, 24),
  dtype: fc.constantFrom("f32" as const, "f16" as const),
  seed: fc.nat(1000),
});

type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

async function check(backend: Backend, c: Case): Promise<void> {
  const kvHeads = Math.max(1, c.heads / c.group), heads = kvHeads * c.group;
  const kvLen = c.cuts.reduce((a, b) => a + b, 0);
  const q = backend.tensor(
    randomData(heads * c.qLen * c.dim, c.seed),
    [1, heads, c.qLen, c.dim],
    c.dtype,
  );
  const k = backend.tensor(randomData(kvHeads * kvLen * c.dim, c.seed + 1), [
    1,
    kvHeads,
    kvLen,
    c.dim,
  ], c.dtype);
  const v = backend.tensor(
    randomData(kvHeads * kvLen * c.valueDim, c.seed + 2),
    [1, kvHeads, kvLen, c.valueDim],
    c.dtype,
  );
  const states = [];
  let at = 0;
  for (const n of c.cuts) {
    const part = await attend(backend, q, slice(k, 2, at, at + n), slice(v, 2, at, at + n), {
      lse: true,
    });
    states.push({ out: part.out, lse: part.lse! });
    at += n;
  }
  const merged = await mergeStates(backend, states);
  const whole = await attend(backend, q, k, v, { lse: true });
  const [out, lse, wantOut, wantLse] = await backend.readMany([
    merged.out,
    merged.lse,
    whole.out,
    whole.lse!,
  ]);
  const tol = c.dtype === "f16" ? 4e-3 : 2e-6;
  assertLessOrEqual(maxAbsError(out, wantOut), tol);
  lse.forEach((x, i) =>
    assert(
      x === wantLse[i] || Math.abs(x - wantLse[i]) <= 1e-5 * (1 + Math.abs(x)),
      `lse ${x} vs ${wantLse[i]}`,
    )
  );
  for (const s of states) backend.release(s.out), backend.release(s.lse);
  for (const t of [q, k, v, merged.out, merged.lse, whole.out, whole.lse!]) backend.release(t);
}

Deno.test("cpu mergeStates() of states over disjoint key ranges equals attention over their union", async () => {
  const cpu = createCpuBackend();
  await fc.assert(fc.asyncProperty(caseArb, (c) => check(cpu, c)), { numRuns: 60 });
  cpu.dispose();
});

Deno.test({
  name: "webgpu mergeStates() of states over disjoint key ranges equals attention over their union",
  ignore: gpu === undefined,
  fn: async () => {
    await fc.assert(fc.asyncProperty(caseArb, (c) => check(gpu!, c)), { numRuns: 12 });
  },
});

Deno.test("mergeStates() refuses bad states before any work", async () => {
  const cpu = createCpuBackend();
  const out = cpu.tensor(new Float32Array(8), [1, 1, 2, 4]),
    lse = cpu.tensor(new Float32Array(2), [1, 1, 2]);
  const other = cpu.tensor(new Float32Array(3), [1, 1, 3]);
  await assertRejects(
    () => mergeStates(cpu, [{ out, lse }]),
    RangeError,
    "states.length must be at least 2",
  );
  await assertRejects(
    () => mergeStates(cpu, [{ out, lse }, { out, lse: other }]),
    RangeError,
    "states[1].lse.shape must be [1,1,2]",
  );
  await assertRejects(
    () => mergeStates(cpu, [{ out, lse }, { out: lse, lse }]),
    RangeError,
    "states[1].out.shape",
  );
  await assertRejects(
    () => mergeStates({} as Backend, [{ out, lse }]),
    TypeError,
    "backend must be a Backend with mergeStates()",
  );
  cpu.dispose();
});
