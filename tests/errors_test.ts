/**
 * Every row of the bad-input tables, on each backend: the error class, a message naming the field
 * and the value, no device call, the backend's state (pool, staging and pipeline counters)
 * unchanged, and a valid call right afterwards still right.
 * @module
 */
import { assert, assertEquals, assertLessOrEqual } from "@std/assert";
import { attention, causal, mask } from "../core/mod.ts";
import { attend } from "../attend.ts";
import type { Backend } from "../backends/backend.ts";
import { createCpuBackend } from "../backends/cpu/mod.ts";
import { createWebGpuBackend, type WebGpuBackend } from "../backends/webgpu/mod.ts";
import { CORE_BAD_INPUTS, type Fixture } from "./_bad_inputs.ts";
import { BACKEND_BAD_INPUTS } from "./_bad_inputs_backend.ts";
import { observe } from "./_device_calls.ts";
import { oracleCase, problemData } from "./_arbitraries.ts";
import { maxAbsError, oracle } from "./_oracle.ts";
import { gpu } from "./_webgpu.ts";

const shape = { batch: 1, heads: 2, kvHeads: 2, qLen: 8, kvLen: 8, headDim: 8, valueDim: 8 };
const data = problemData(shape, 17);
const expected = oracle(
  oracleCase(shape, data, 1 / Math.sqrt(8), {
    name: "causal",
    expr: causal(),
    allowed: (_b, _h, i, j) => j <= i,
  }),
).out;

async function fixture(backend: Backend, another: () => Promise<Backend>): Promise<Fixture> {
  const dims = [1, 2, 8, 8];
  const [q, k, v] = [data.q, data.k, data.v].map((x) => backend.tensor(x, dims));
  const spec = mask(causal())(attention(q, k, v));
  const released = backend.tensor(data.k, dims);
  backend.release(released);
  const other = await another();
  // The refusals never touch a foreign tensor's storage, so its backend can go at once.
  const foreign = other.tensor(data.q, dims);
  other.dispose();
  const disposed = await another();
  disposed.dispose();
  let big: Fixture["big"];
  const device = (backend as Partial<WebGpuBackend>).device;
  if (device) {
    const kvLen = Math.ceil((1.5 * device.limits.maxStorageBufferBindingSize) / 4 / 4096);
    big = {
      q: backend.tensor(new Float32Array(4096), [1, 1, 4096, 1]),
      kv: backend.tensor(new Float32Array(kvLen), [1, 1, kvLen, 1]),
      scoreBytes: 4 * 4096 * kvLen,
    };
  }
  return {
    backend,
    q,
    k,
    v,
    spec,
    plan: backend.plan(spec),
    released,
    foreign,
    disposed,
    big,
  };
}

/** What a backend lets one observe of its state. */
const stateOf = (backend: Backend) => (backend as Partial<WebGpuBackend>).stats?.();

const backends: [Backend, () => Promise<Backend>][] = [[
  createCpuBackend(),
  () => Promise.resolve(createCpuBackend()),
]];
if (gpu) backends.push([gpu, () => createWebGpuBackend()]);

for (const [backend, another] of backends) {
  Deno.test(`${backend.name} refuses every bad input by name, before any work, changing nothing`, async (t) => {
    const f = await fixture(backend, another);
    await backend.run(f.plan, { q: f.q, k: f.k, v: f.v }); // compile before the state is compared
    for (const r of [...CORE_BAD_INPUTS, ...BACKEND_BAD_INPUTS]) {
      if (r.only && r.only !== backend.name) continue;
      await t.step({
        name: `${r.entry}: ${r.name}`,
        fn: async () => {
          const before = stateOf(backend);
          const { error, calls } = await observe(backend, () => r.call(f));
          assert(
            error instanceof r.error,
            `expected ${r.error.name}, got ${(error as Error)?.name}: ${(error as Error)?.message}`,
          );
          const message = error.message;
          const value = typeof r.value === "function" ? r.value(f) : r.value;
          assert(message.startsWith("Cannot "), message);
          assert(message.includes(r.field), `field "${r.field}" not in: ${message}`);
          assert(message.includes(value), `value "${value}" not in: ${message}`);
          assertEquals(calls, [], "device calls");
          assertEquals(stateOf(backend), before, "backend state");
          const { out } = await attend(backend, f.q, f.k, f.v, { causal: true });
          assertLessOrEqual(
            maxAbsError(await backend.read(out), expected),
            1e-5,
            "valid call after",
          );
          backend.release(out);
        },
      });
    }
  });
}
