import { assert, assertEquals, assertLessOrEqual } from "@std/assert";
import { causal } from "../../core/mod.ts";
import { createCpuBackend } from "../../backends/cpu/mod.ts";
import { webGpuCaps } from "../../backends/webgpu/mod.ts";
import { flashSubgroupsFit, flashWgsl } from "../../backends/webgpu/kernels/flash_wgsl.ts";
import { maxAbsError, oracle, tolerance } from "../_oracle.ts";
import { oracleCase, problemData } from "../_arbitraries.ts";
import { runProblem } from "../_run.ts";
import { gpu } from "../_webgpu.ts";

const ignore = gpu === undefined;
const limits = {
  maxComputeWorkgroupStorageSize: 49152,
  maxComputeInvocationsPerWorkgroup: 1024,
} as GPUSupportedLimits;
const isPowerOfTwo = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

Deno.test("webGpuCaps() records subgroups only where granted, with their sizes", () => {
  const tile = { q: 128, kv: 64 };
  const none = webGpuCaps(limits, tile);
  assertEquals(none.subgroups, false);
  assertEquals("subgroupSizes" in none, false);
  const granted = webGpuCaps(limits, tile, 4, {
    subgroups: true,
    subgroupSizes: { min: 32, max: 32 },
  });
  assertEquals(granted.subgroups, true);
  assertEquals(granted.subgroupSizes, { min: 32, max: 32 });
  assert(Object.isFrozen(granted.subgroupSizes));
  const refused = webGpuCaps(limits, tile, 4, {
    subgroups: false,
    subgroupSizes: { min: 4, max: 128 },
  });
  assertEquals("subgroupSizes" in refused, false);
});

Deno.test({
  name: "webgpu caps say whether the device granted subgroups, and their power-of-two sizes",
  ignore,
  fn: () => {
    const { caps, device } = gpu!;
    assertEquals(typeof caps.subgroups, "boolean");
    assertEquals(caps.subgroups, device.features.has("subgroups"));
    if (caps.subgroupSizes) {
      assert(caps.subgroups, "subgroupSizes only with subgroups");
      const { min, max } = caps.subgroupSizes;
      assertLessOrEqual(min, max);
      assert(isPowerOfTwo(min) && isPowerOfTwo(max), `sizes ${min}..${max}`);
    }
    // The software adapter refuses the feature; the request falls back without it.
    if (/llvmpipe/i.test(gpu!.adapterName)) assertEquals(caps.subgroups, false);
  },
});

Deno.test({
  name: "webgpu runs flash whether or not subgroups were granted",
  ignore,
  fn: async () => {
    const shape = {
      batch: 1,
      heads: 2,
      kvHeads: 1,
      qLen: 37,
      kvLen: 41,
      headDim: 24,
      valueDim: 24,
    };
    const data = problemData(shape, 7);
    const m = { name: "causal", expr: causal(), allowed: causalAllowed };
    const c = oracleCase(shape, data, 1 / Math.sqrt(shape.headDim), m);
    const ref = oracle(c);
    const cpu = createCpuBackend();
    const base = await runProblem(cpu, shape, data, { mask: m });
    const run = await runProblem(gpu!, shape, data, { mask: m, family: "flash" });
    assertEquals(run.family, "flash");
    const tol = tolerance(c, ref);
    assertLessOrEqual(maxAbsError(run.out, ref.out), tol, "flash vs oracle");
    assertLessOrEqual(maxAbsError(run.out, base.out), 2 * tol, "flash vs cpu");
    cpu.dispose();
  },
});

function causalAllowed(_b: number, _h: number, i: number, j: number, nq: number, nk: number) {
  return j <= i + nk - nq;
}

Deno.test("the subgroup flash variant reduces rows by shuffles, and is chosen only where it fits", () => {
  const base = {
    headDim: 64,
    valueDim: 64,
    dtype: "f32" as const,
    tile: { q: 128, kv: 64 },
    keysPerThread: 4 as const,
    dk: 32,
    kc: 32,
    unroll: 4,
    vec: true,
    mask: causal(),
  };
  const plain = flashWgsl(base), shuffled = flashWgsl({ ...base, subgroups: true });
  assert(!plain.includes("subgroupShuffleXor"));
  // 16 invocations per row group: four butterfly steps for the maximum, four for the total.
  for (const bit of [1, 2, 4, 8]) assert(shuffled.includes(`subgroupShuffleXor(mx, ${bit}u)`));
  for (const bit of [1, 2, 4, 8]) assert(shuffled.includes(`subgroupShuffleXor(total, ${bit}u)`));
  assert(!shuffled.includes("subgroupShuffleXor(mx, 16u)"));
  // Fewer workgroup barriers: one of the two around each row-maximum exchange (the other still
  // guards P's stores over the Q/K chunks) and both of the total's.
  const barriers = (s: string) => s.split("workgroupBarrier()").length - 1;
  assertEquals(barriers(plain) - barriers(shuffled), 3);
  assert(flashSubgroupsFit({ q: 128, kv: 64 }, 4, 32));
  assert(!flashSubgroupsFit({ q: 128, kv: 64 }, 4, 8), "a row group of 16 needs subgroups of 16");
  assert(!flashSubgroupsFit({ q: 36, kv: 12 }, 4, 32), "3 invocations per row group");
  const caps = webGpuCaps(limits, base.tile, 4, { subgroups: true, subgroupKernels: true });
  assertEquals(caps.engine, "wgsl-subgroups");
  assertEquals(webGpuCaps(limits, base.tile, 4, { subgroups: true }).engine, "wgsl");
});
