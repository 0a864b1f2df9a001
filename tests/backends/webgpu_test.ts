import fc from "fast-check";
import { assert, assertEquals, assertLessOrEqual, assertRejects } from "@std/assert";
import {
  attention,
  causal,
  compose,
  eq,
  groupHeads,
  kernel,
  kvIdx,
  mask,
  mod,
  qPos,
  softcap,
  sub,
  tensorDesc,
  window,
} from "../../core/mod.ts";
import { createCpuBackend } from "../../backends/cpu/mod.ts";
import { flashChunks, flashWgsl } from "../../backends/webgpu/kernels/flash_wgsl.ts";
import {
  outputWgsl,
  packF16Wgsl,
  scoresWgsl,
  softmaxWgsl,
} from "../../backends/webgpu/kernels/materialized_wgsl.ts";
import { maskCase, oracleCase, problemData, scoreModCase, shapeArb } from "../_arbitraries.ts";
import { maxAbsError, oracle, tolerance } from "../_oracle.ts";
import { roundF16, runProblem } from "../_run.ts";
import { gpu } from "../_webgpu.ts";
import { assertGqaEqualsRepeatedKv } from "../_gqa.ts";
import { createWebGpuBackend } from "../../backends/webgpu/mod.ts";

const cpu = createCpuBackend();
const ignore = gpu === undefined;
const causalCase = {
  name: "causal",
  expr: causal(),
  allowed: (_b: number, _h: number, i: number, j: number, nq: number, nk: number) =>
    j <= i + nk - nq,
};

Deno.test({
  name: "webgpu flash and materialized equal the oracle and the cpu backend",
  ignore,
  fn: async () => {
    await fc.assert(
      fc.asyncProperty(
        shapeArb({ batch: 2, kvHeads: 2, len: 100, dim: 80 }),
        fc.option(maskCase, { nil: undefined }),
        fc.option(scoreModCase, { nil: undefined }),
        fc.boolean(),
        fc.integer({ min: 1, max: 1 << 30 }),
        async (shape, m, s, bnhd, seed) => {
          const data = problemData(shape, seed);
          const c = oracleCase(shape, data, 1 / Math.sqrt(shape.headDim), m, s);
          const ref = oracle(c);
          const tol = tolerance(c, ref);
          const base = await runProblem(cpu, shape, data, { mask: m, scoreMod: s, lse: true });
          for (const family of ["flash", "materialized"] as const) {
            const got = await runProblem(gpu!, shape, data, {
              mask: m,
              scoreMod: s,
              bnhd,
              family,
              lse: true,
            });
            assertLessOrEqual(
              maxAbsError(got.out, ref.out),
              tol,
              `${family} vs oracle, mask ${m?.name}, mod ${s?.name}`,
            );
            assertLessOrEqual(maxAbsError(got.out, base.out), 2 * tol, `${family} vs cpu`);
            assertLessOrEqual(maxAbsError(got.lse!, ref.lse), 1e-4, `${family} lse`);
          }
        },
      ),
      { numRuns: 12, verbose: true },
    );
  },
});

Deno.test({
  name: "int mod of negative dividends and zero divisors truncates as the CPU does, on webgpu too",
  ignore,
  fn: async () => {
    // llvmpipe computes i32 `%` of a negative dividend as an unsigned remainder (-1 % 3 == 0).
    const shape = { batch: 1, heads: 1, kvHeads: 1, qLen: 40, kvLen: 40, headDim: 8, valueDim: 8 };
    const data = problemData(shape, 4);
    const d = sub(qPos, kvIdx);
    const masks = [
      { name: "d % 3 == 0", expr: eq(mod(d, 3), 0), rem: (x: number) => x % 3 === 0 },
      { name: "d % -3 == 0", expr: eq(mod(d, -3), 0), rem: (x: number) => x % -3 === 0 },
      { name: "d % 7 == -2", expr: eq(mod(d, 7), -2), rem: (x: number) => x % 7 === -2 },
      { name: "d % 0 == 0", expr: eq(mod(d, 0), 0), rem: () => true },
    ];
    for (const m of masks) {
      const c = { ...m, allowed: (_b: number, _h: number, i: number, j: number) => m.rem(i - j) };
      const ref = oracle(oracleCase(shape, data, 1 / Math.sqrt(8), c));
      for (const backend of [cpu, gpu!]) {
        for (const family of ["flash", "materialized"] as const) {
          const got = await runProblem(backend, shape, data, { mask: c, family });
          const label = `${backend.name} ${family} ${m.name}`;
          assertLessOrEqual(maxAbsError(got.out, ref.out), 1e-5, label);
        }
      }
    }
  },
});

Deno.test({
  name: "webgpu named edge cases: Nq=1, Nk=1, empty rows, odd head dims, Nq != Nk, f16",
  ignore,
  fn: async () => {
    const cases = [
      { batch: 1, heads: 4, kvHeads: 1, qLen: 1, kvLen: 113, headDim: 72, valueDim: 72 },
      { batch: 2, heads: 2, kvHeads: 2, qLen: 7, kvLen: 1, headDim: 24, valueDim: 24 },
      { batch: 1, heads: 2, kvHeads: 1, qLen: 113, kvLen: 7, headDim: 128, valueDim: 128 },
    ];
    const masks = [undefined, causalCase, {
      name: "window(2,0)",
      expr: window(2, 0),
      allowed: (_b: number, _h: number, i: number, j: number, nq: number, nk: number) =>
        j >= i + nk - nq - 2 && j <= i + nk - nq,
    }];
    for (const shape of cases) {
      for (const m of masks) {
        for (const dtype of m === undefined ? ["f32", "f16"] as const : ["f32"] as const) {
          const raw = problemData(shape, 9);
          const data = dtype === "f16"
            ? { q: roundF16(raw.q), k: roundF16(raw.k), v: roundF16(raw.v) }
            : raw;
          const c = oracleCase(shape, data, 1 / Math.sqrt(shape.headDim), m);
          const ref = oracle(c);
          const tol = tolerance(c, ref);
          for (const family of ["flash", "materialized"] as const) {
            const got = await runProblem(gpu!, shape, data, { mask: m, family, dtype, lse: true });
            const label = `${family} ${dtype} ${m?.name} ${JSON.stringify(shape)}`;
            for (let i = 0; i < got.out.length; i++) {
              const bound = tol + (dtype === "f16" ? Math.abs(ref.out[i]) * 2 ** -11 : 0);
              assertLessOrEqual(Math.abs(got.out[i] - ref.out[i]), bound, label);
            }
            for (let i = 0; i < got.lse!.length; i++) {
              if (ref.lse[i] === -Infinity) {
                assertEquals(got.lse![i], -Infinity, `${label} empty row lse`);
              } else assertLessOrEqual(Math.abs(got.lse![i] - ref.lse[i]), 1e-4, label);
            }
          }
        }
      }
    }
  },
});

Deno.test({
  name: "webgpu probabilities equal the oracle's",
  ignore,
  fn: async () => {
    const shape = { batch: 1, heads: 2, kvHeads: 2, qLen: 9, kvLen: 33, headDim: 24, valueDim: 24 };
    const data = problemData(shape, 4);
    const ref = oracle(oracleCase(shape, data, 1 / Math.sqrt(24)));
    const { probs } = await runProblem(gpu!, shape, data, { probs: true });
    assertLessOrEqual(maxAbsError(probs!, ref.probs), 1e-6);
  },
});

/** Tiles, keys per invocation and unrolling: the software default, and hardware ones. */
const FLASH_CONFIGS = [
  [{ q: 16, kv: 16 }, 4, 4],
  [{ q: 64, kv: 64 }, 8, 32],
  [{ q: 128, kv: 64 }, 4, 32],
] as const;

Deno.test({
  name: "webgpu generated WGSL compiles for a matrix of specs",
  ignore,
  fn: async () => {
    const device = gpu!.device;
    const sources: string[] = [packF16Wgsl()];
    for (const dtype of ["f32", "f16"] as const) {
      for (
        const [headDim, valueDim] of [[1, 1], [24, 24], [64, 64], [72, 40], [128, 128], [256, 256]]
      ) {
        for (const m of [undefined, causal(), window(8, 8)]) {
          const scoreMod = softcap(30)(
            attention(
              tensorDesc([1, 1, 1, 1]),
              tensorDesc([1, 1, 1, 1]),
              tensorDesc([1, 1, 1, 1]),
            ),
          ).scoreMod;
          const params = { headDim, valueDim, dtype, mask: m, scoreMod };
          for (const [tile, keysPerThread, unroll] of FLASH_CONFIGS) {
            for (const vec of headDim % 4 === 0 && valueDim % 4 === 0 ? [false, true] : [false]) {
              const shape = { tile, keysPerThread, valueDim, vec };
              const chunks = flashChunks(49152, shape, headDim);
              assert(chunks, `no chunks for ${tile.q}x${tile.kv} D${headDim}`);
              sources.push(flashWgsl({ ...params, ...shape, ...chunks, unroll }));
            }
          }
          sources.push(
            scoresWgsl(params),
            softmaxWgsl(params),
            outputWgsl(params),
          );
        }
      }
    }
    for (const code of sources) {
      const info = await device.createShaderModule({ code }).getCompilationInfo();
      assertEquals(
        info.messages.filter((msg) => msg.type === "error").map((msg) => msg.message),
        [],
      );
    }
  },
});

Deno.test({
  name:
    "webgpu flash allocates no Nq×Nk buffer: peak stays within 1.1× of q, k, v, out, lse at N=4096",
  ignore,
  fn: async () => {
    const b = gpu!;
    const [heads, n, dim] = [1, 4096, 64];
    const data = new Float32Array(heads * n * dim).map((_, i) => Math.sin(i) * 0.5);
    const start = b.stats().liveBytes;
    b.resetPeak();
    const q = b.tensor(data, [1, heads, n, dim]);
    const k = b.tensor(data, [1, heads, n, dim]);
    const v = b.tensor(data, [1, heads, n, dim]);
    const plan = b.plan(compose(mask(causal()))(attention(q, k, v, { lse: true })));
    assertEquals(plan.family, "flash");
    const { out, lse } = await b.run(plan, { q, k, v });
    await b.sync();
    const ioBytes = 4 * (4 * heads * n * dim + heads * n);
    assertLessOrEqual(
      b.stats().peakBytes - start,
      1.1 * ioBytes,
      `peak ${b.stats().peakBytes - start} vs io ${ioBytes}`,
    );
    const got = await b.read(out);
    assert(got.every(Number.isFinite));
    for (const t of [q, k, v, out, lse!]) b.release(t);
    assertEquals(b.stats().liveBytes, start);
  },
});

Deno.test({
  name: "webgpu rejects foreign and mismatched tensors before touching the pool",
  ignore,
  fn: async () => {
    const b = gpu!;
    const q = b.tensor(new Float32Array(64), [1, 1, 8, 8]);
    const spec = groupHeads()(attention(q, q, q));
    const plan = b.plan(spec);
    const other = b.tensor(new Float32Array(128), [1, 1, 16, 8]);
    const before = b.stats();
    const foreign = cpu.tensor(new Float32Array(64), [1, 1, 8, 8]);
    await assertRejects(
      () => b.run(plan, { q, k: foreign, v: q }),
      TypeError,
      'k: tensor must belong to backend "webgpu", current value is a tensor of "cpu"',
    );
    await assertRejects(
      () => b.run(plan, { q, k: other, v: other }),
      RangeError,
      "k.shape must be 1,1,8,8 as planned, current value is 1,1,16,8",
    );
    assertEquals(b.stats().liveBytes, before.liveBytes);
    assertEquals(kernel("flash")(spec).kernel, "flash");
    b.release(q), b.release(other);
  },
});

Deno.test({
  name: "webgpu rejects a tensor over the storage-binding limit, naming it, before allocating",
  ignore,
  fn: async () => {
    const b = gpu!;
    const limit = b.device.limits.maxStorageBufferBindingSize;
    if (limit > 256 * 2 ** 20) return; // Too large to allocate in a test on this adapter.
    const dim = 64, rows = limit / (4 * dim) + 64;
    const big = b.tensor(new Float32Array(rows * dim), [1, 1, rows, dim]);
    const small = b.tensor(new Float32Array(8 * dim), [1, 1, 8, dim]);
    const plan = b.plan(kernel("flash")(attention(small, big, big)));
    const before = b.stats();
    await assertRejects(
      () => b.run(plan, { q: small, k: big, v: big }),
      RangeError,
      `over the device's maxStorageBufferBindingSize ${limit}`,
    );
    assertEquals(b.stats(), before);
    b.release(big), b.release(small);
  },
});

Deno.test({
  name: "webgpu GQA equals MHA with repeated KV heads (packed and unpacked rows)",
  ignore,
  fn: () => assertGqaEqualsRepeatedKv(gpu!, 8),
});

Deno.test({
  name: "webgpu larger flash tiles (64x64 and 32x32, 8 or 4 keys per invocation) equal the oracle",
  ignore,
  fn: async () => {
    // The software adapter defaults to 16x16 tiles; these run the GPU tiles' code paths too:
    // swizzled Q/K chunks, one chunk (D24) and several with a partial last one (D72), the
    // swizzle computed per step (unroll 4) and fixed at generation (unroll 8).
    const configs = [
      {
        flashTile: { q: 64, kv: 64 },
        flashKeysPerThread: 8,
        flashUnroll: 4,
        headDim: 24,
        kvHeads: 2,
      },
      {
        flashTile: { q: 32, kv: 32 },
        flashKeysPerThread: 4,
        flashUnroll: 8,
        headDim: 72,
        kvHeads: 4,
      },
    ] as const;
    for (const { headDim, kvHeads, ...options } of configs) {
      const big = await createWebGpuBackend(options);
      try {
        const shape = {
          batch: 2,
          heads: 4,
          kvHeads,
          qLen: 45,
          kvLen: 70,
          headDim,
          valueDim: headDim,
        };
        for (const m of [undefined, causalCase]) {
          const data = problemData(shape, 3);
          const c = oracleCase(shape, data, 1 / Math.sqrt(headDim), m);
          const ref = oracle(c);
          const got = await runProblem(big, shape, data, { mask: m, family: "flash", lse: true });
          const at = `D${headDim} unroll ${options.flashUnroll}, mask ${m?.name}`;
          assertLessOrEqual(maxAbsError(got.out, ref.out), tolerance(c, ref), at);
          assertLessOrEqual(maxAbsError(got.lse!, ref.lse), 1e-4, `lse, ${at}`);
        }
      } finally {
        big.dispose();
      }
    }
  },
});
