import fc from "fast-check";
import { assert, assertEquals, assertLessOrEqual, assertThrows } from "@std/assert";
import {
  attention,
  causal,
  compose,
  explain,
  groupHeads,
  lower,
  mask,
  tensorDesc,
  UnsupportedSpecError,
} from "../../core/mod.ts";
import { hierarchical, type HierarchicalOptions } from "../../variants/mod.ts";
import type { Backend, Tensor } from "../../backends/backend.ts";
import { cpuCaps, createCpuBackend } from "../../backends/cpu/mod.ts";
import { prng, randomData, type Shape, shapeArb } from "../_arbitraries.ts";
import { type HierarchicalCase, hierarchicalError } from "../_hierarchical_oracle.ts";
import { bnhdTensor, roundF16 } from "../_run.ts";
import { gpu } from "../_webgpu.ts";
import { poolWgsl, rowsWgsl } from "../../backends/webgpu/kernels/hierarchical_wgsl.ts";

const backends: Backend[] = [createCpuBackend(), createCpuBackend({ kernels: "typescript" })];
if (gpu?.caps.families.includes("hierarchical")) backends.push(gpu);

/** Branch sizes of a problem; `gates` draws a gate tensor instead of per-head weights. */
interface Branches {
  readonly window: number;
  readonly block: number;
  readonly stride: number;
  readonly topK: number;
  readonly gates: boolean;
}

const branchesArb: fc.Arbitrary<Branches> = fc.record({
  window: fc.integer({ min: 1, max: 24 }),
  block: fc.integer({ min: 1, max: 8 }),
  strideShare: fc.double({ min: 0, max: 1, noNaN: true }),
  topK: fc.integer({ min: 0, max: 4 }),
  gates: fc.boolean(),
}).map(({ strideShare, ...b }) => ({
  ...b,
  stride: 1 + Math.floor(strideShare * (b.block - 1)),
}));

interface Problem {
  readonly shape: Shape;
  readonly branches: Branches;
  readonly seed: number;
  readonly dtype?: "f32" | "f16";
  readonly bnhd?: boolean;
}

/** Runs a problem on a backend and checks it against the float64 reference. */
async function check(backend: Backend, problem: Problem): Promise<void> {
  const { shape, branches, seed, dtype = "f32", bnhd = false } = problem;
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = shape;
  const stored = (x: Float32Array) => dtype === "f16" ? roundF16(x) : x;
  const data = {
    q: stored(randomData(batch * heads * qLen * headDim, seed)),
    k: stored(randomData(batch * kvHeads * kvLen * headDim, seed + 1)),
    v: stored(randomData(batch * kvHeads * kvLen * valueDim, seed + 2)),
    gates: stored(randomData(batch * heads * qLen * 3, seed + 3).map(Math.abs)),
  };
  const next = prng(seed + 4);
  const perHead = () => Array.from({ length: heads }, () => Math.round(next() * 8) / 4 - 0.5);
  const weights = { compressed: perHead(), selected: perHead(), window: perHead() };
  const make = (x: Float32Array, s: number[]) =>
    bnhd ? bnhdTensor(backend, x, s, dtype) : backend.tensor(x, s, dtype);
  const q = make(data.q, [batch, heads, qLen, headDim]);
  const k = make(data.k, [batch, kvHeads, kvLen, headDim]);
  const v = make(data.v, [batch, kvHeads, kvLen, valueDim]);
  const gates = branches.gates
    ? backend.tensor(data.gates, [batch, heads, qLen, 3], dtype)
    : undefined;
  const options: HierarchicalOptions = {
    window: branches.window,
    block: branches.block,
    stride: branches.stride,
    topK: branches.topK,
    ...(gates ? { gates } : { weights }),
  };
  const spec = compose(groupHeads(), hierarchical(options))(attention(q, k, v));
  const result = await backend.run(backend.plan(spec), { q, k, v, ...(gates ? { gates } : {}) });
  const out = await backend.read(result.out);
  for (const t of [q, k, v, gates, result.out] as (Tensor | undefined)[]) {
    if (t) backend.release(t);
  }
  const c: HierarchicalCase = {
    ...shape,
    ...data,
    scale: 1 / Math.sqrt(headDim),
    ...branches,
    weight: (b, h, i, branch) =>
      gates
        ? data.gates[((b * heads + h) * qLen + i) * 3 + branch]
        : [weights.compressed, weights.selected, weights.window][branch][h],
  };
  const { error, tolerance, ties } = hierarchicalError(c, out);
  const rows = batch * heads * qLen;
  assertLessOrEqual(ties, Math.max(2, rows / 4), `${ties} of ${rows} rows tie`);
  const f16 = dtype === "f16" ? 1e-3 : 0;
  assertLessOrEqual(error, tolerance + f16, JSON.stringify({ shape, branches, dtype, bnhd }));
}

for (const backend of backends) {
  const name = `${backend.name} (${backend.caps.engine})`;

  Deno.test(`${name} hierarchical attention equals the explicit float64 reference`, async () => {
    await fc.assert(
      fc.asyncProperty(
        shapeArb({ batch: 2, kvHeads: 2, len: 60, dim: 40 }),
        branchesArb,
        fc.integer({ min: 1, max: 1 << 30 }),
        fc.constantFrom("f32" as const, "f16" as const),
        fc.boolean(),
        async (shape, branches, seed, dtype, bnhd) => {
          await check(backend, { shape, branches, seed, dtype, bnhd });
        },
      ),
      { numRuns: backend.name === "webgpu" ? 25 : 40 },
    );
  });

  Deno.test(`${name} hierarchical attention at decode, odd sizes and fewer keys than a block`, async () => {
    const cases: [Partial<Shape>, Partial<Branches>][] = [
      [{ qLen: 1, kvLen: 113, headDim: 24, valueDim: 24 }, { block: 8, stride: 4, topK: 3 }],
      [{ qLen: 7, kvLen: 113, headDim: 72, valueDim: 72 }, { block: 16, stride: 16, topK: 2 }],
      [{ qLen: 5, kvLen: 3, headDim: 8, valueDim: 8 }, { block: 4, stride: 2, topK: 1 }],
      [{ qLen: 9, kvLen: 4, headDim: 8, valueDim: 5 }, { block: 2, stride: 1, topK: 2 }],
      [{ qLen: 33, kvLen: 33, headDim: 1, valueDim: 3 }, { block: 1, stride: 1, topK: 4 }],
    ];
    for (const [sizes, b] of cases) {
      const shape = { batch: 1, heads: 4, kvHeads: 2, ...sizes } as Shape;
      const branches = { window: 5, block: 4, stride: 4, topK: 1, gates: false, ...b };
      await check(backend, { shape, branches, seed: 7 });
    }
  });
}

Deno.test("hierarchical() refuses bad sizes and weights by name", () => {
  const x = tensorDesc([1, 2, 16, 8]);
  const cases: [HierarchicalOptions, ErrorConstructor, string][] = [
    [{ window: 0, block: 4 }, RangeError, "hierarchy.window must be an integer in 1.."],
    [{ window: 4, block: 0 }, RangeError, "hierarchy.block must be an integer in 1..65536"],
    [{ window: 4, block: 4, stride: 5 }, RangeError, "hierarchy.stride must be an integer in 1..4"],
    [{ window: 4, block: 4, topK: 65 }, RangeError, "hierarchy.topK must be an integer in 0..64"],
    [{ window: 4, block: 4, topk: 1 } as never, TypeError, 'did you mean "topK"?'],
    [
      { window: 4, block: 4, weights: { window: NaN } },
      RangeError,
      "weights.window[0] must be finite",
    ],
    [{ window: 4, block: 4, weights: { windo: 1 } } as never, TypeError, 'did you mean "window"?'],
    [
      { window: 4, block: 4, weights: {}, gates: tensorDesc([1, 2, 16, 3]) },
      TypeError,
      "given weights or gates, not both",
    ],
  ];
  for (const [options, error, message] of cases) {
    assertThrows(() => hierarchical(options)(attention(x, x, x)), error, message);
  }
  assertThrows(
    () =>
      hierarchical({ window: 4, block: 4, weights: { selected: [1, 2, 3] } })(attention(x, x, x)),
    RangeError,
    "hierarchy.weights.selected.length must be q heads (2), current value is 3",
  );
  assertThrows(
    () =>
      hierarchical({ window: 4, block: 4, gates: tensorDesc([1, 2, 15, 3]) })(attention(x, x, x)),
    RangeError,
    "hierarchy.gates.shape must be [1,2,16,3]",
  );
});

Deno.test("lower() runs hierarchical attention alone: no mask, lse, probs or tile", () => {
  const x = tensorDesc([1, 2, 32, 8]);
  const nsa = hierarchical({ window: 4, block: 4, topK: 1 });
  assertEquals(lower(nsa(attention(x, x, x)), cpuCaps).family, "hierarchical");
  assertThrows(
    () => lower(compose(mask(causal()), nsa)(attention(x, x, x)), cpuCaps),
    UnsupportedSpecError,
    "mask with hierarchical() is unsupported",
  );
  assertThrows(
    () => lower(nsa(attention(x, x, x, { lse: true })), cpuCaps),
    UnsupportedSpecError,
    "outputs.lse with hierarchical() is unsupported",
  );
});

Deno.test("explain() reports hierarchical cost: summaries, selected blocks and the window", () => {
  const x = tensorDesc([1, 4, 4096, 64]);
  const full = explain(lower(mask(causal())(attention(x, x, x)), cpuCaps));
  const nsa = hierarchical({ window: 256, block: 32, stride: 16, topK: 8 });
  const report = explain(lower(nsa(attention(x, x, x)), cpuCaps));
  assert(report.flops < full.flops / 3, report.summary);
  assert(report.density < 0.2, report.summary);
  // The pooled summaries are the only scratch: 255 per KV head, keys and values in f32.
  assertEquals(report.scratchBytes, 4 * 4 * 255 * 128);
});

Deno.test("a hierarchical plan with gates needs them at run time, and one without refuses them", async () => {
  const cpu = createCpuBackend();
  const x = cpu.tensor(new Float32Array(2 * 8 * 4), [1, 2, 8, 4]);
  const gates = cpu.tensor(new Float32Array(2 * 8 * 3), [1, 2, 8, 3]);
  const gated = cpu.plan(hierarchical({ window: 2, block: 2, gates })(attention(x, x, x)));
  const fixed = cpu.plan(hierarchical({ window: 2, block: 2 })(attention(x, x, x)));
  await cpu.run(gated, { q: x, k: x, v: x, gates });
  let error = await cpu.run(gated, { q: x, k: x, v: x }).catch((e) => e);
  assert(error instanceof TypeError && /Cannot use gates/.test(error.message), String(error));
  error = await cpu.run(fixed, { q: x, k: x, v: x, gates }).catch((e) => e);
  assert(error instanceof TypeError && /gates must be absent/.test(error.message), String(error));
  cpu.dispose();
});

Deno.test({
  name: "webgpu hierarchical WGSL compiles for odd and widest head dims, topK 0 and 64",
  ignore: gpu === undefined,
  fn: async () => {
    const device = gpu!.device;
    for (const dtype of ["f32", "f16"] as const) {
      for (const [headDim, valueDim] of [[1, 1], [24, 24], [72, 40], [128, 128], [256, 256]]) {
        for (const topK of [0, 64]) {
          for (const gates of [false, true]) {
            const params = { headDim, valueDim, dtype, topK, gates };
            for (const code of [poolWgsl(params), rowsWgsl(params)]) {
              const info = await device.createShaderModule({ code }).getCompilationInfo();
              assertEquals(
                info.messages.filter((m) => m.type === "error").map((m) => m.message),
                [],
                JSON.stringify(params),
              );
            }
          }
        }
      }
    }
    // The widest kernel also builds into pipelines and runs.
    await check(gpu!, {
      shape: { batch: 1, heads: 2, kvHeads: 1, qLen: 3, kvLen: 70, headDim: 256, valueDim: 256 },
      branches: { window: 3, block: 1, stride: 1, topK: 64, gates: true },
      seed: 11,
      dtype: "f16",
    });
  },
});

Deno.test({
  name: "webgpu hierarchical attention allocates no Nq×Nk buffer: peak stays linear at N=2048",
  ignore: gpu === undefined,
  fn: async () => {
    const b = gpu!;
    const [heads, n, dim] = [2, 2048, 16];
    const data = new Float32Array(heads * n * dim).map((_, i) => Math.sin(i) * 0.5);
    const start = b.stats().liveBytes;
    b.resetPeak();
    const q = b.tensor(data, [1, heads, n, dim]);
    const k = b.tensor(data, [1, heads, n, dim]);
    const v = b.tensor(data, [1, heads, n, dim]);
    const nsa = hierarchical({ window: 64, block: 16, stride: 8, topK: 4 });
    const { out } = await b.run(b.plan(nsa(attention(q, k, v))), { q, k, v });
    await b.sync();
    const peak = b.stats().peakBytes - start;
    // q, k, v and out are 256 KiB each; the summaries 2 × 32 KiB. One score per key pair: 32 MiB.
    const ioBytes = 4 * 4 * heads * n * dim;
    assertLessOrEqual(peak, 1.2 * ioBytes, `peak ${peak} vs io ${ioBytes}`);
    assertLessOrEqual(peak, (4 * n * n) / 8);
    assert((await b.read(out)).every(Number.isFinite));
    for (const t of [q, k, v, out]) b.release(t);
    assertEquals(b.stats().liveBytes, start);
  },
});
