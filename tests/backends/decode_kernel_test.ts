import fc from "fast-check";
import { assert, assertEquals, assertLessOrEqual } from "@std/assert";
import {
  alibi,
  alibiSlopes,
  and,
  attention,
  causal,
  compose,
  ge,
  groupHeads,
  headParam,
  kernel,
  kvIdx,
  lower,
  lt,
  mask,
  qPos,
  sinkLogits,
  softcap,
  sub,
  type TensorDesc,
  tensorDesc,
  type Transform,
  window,
} from "../../core/mod.ts";
import { decodeFits, decodeWgsl } from "../../backends/webgpu/kernels/decode_wgsl.ts";
import { type MaskCase, oracleCase, problemData, type Shape } from "../_arbitraries.ts";
import { maxAbsError, oracle, type OracleCase, tolerance } from "../_oracle.ts";
import { bnhdTensor, roundF16 } from "../_run.ts";
import { gpu } from "../_webgpu.ts";

const ignore = gpu === undefined;

/** A decode problem and how to run it. */
interface DecodeCase {
  readonly shape: Shape;
  readonly dtype?: "f32" | "f16";
  readonly bnhd?: boolean;
  readonly mask?: MaskCase | undefined;
  readonly mod?: "softcap" | "alibi" | undefined;
  readonly sinks?: boolean;
  /** The parallelism lowered for: large values force key splits. */
  readonly parallelism?: number;
}

const pos = (i: number, nq: number, nk: number) => i + nk - nq;

const workgroupBytes = () => gpu!.device.limits.maxComputeWorkgroupStorageSize;

/** The plan of a case (on descriptors alone, or on its tensors), and its modifiers' constants. */
function planOf(
  c: DecodeCase,
  io?: { q: TensorDesc; k: TensorDesc; v: TensorDesc },
) {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = c.shape;
  const dtype = c.dtype ?? "f32";
  const { q, k, v } = io ?? {
    q: tensorDesc([batch, heads, qLen, headDim], dtype),
    k: tensorDesc([batch, kvHeads, kvLen, headDim], dtype),
    v: tensorDesc([batch, kvHeads, kvLen, valueDim], dtype),
  };
  const logits = Array.from({ length: heads }, (_, h) => (h % 3) - 0.5);
  const slopes = alibiSlopes(heads);
  const cap = 2;
  const transforms: Transform[] = [groupHeads(), kernel("flash")];
  if (c.mask) transforms.push(mask(c.mask.expr));
  if (c.mod === "softcap") transforms.push(softcap(cap));
  if (c.mod === "alibi") transforms.push(alibi(slopes));
  if (c.sinks) transforms.push(sinkLogits(logits));
  const spec = compose(...transforms)(attention(q, k, v, { lse: true }));
  const plan = lower(spec, { ...gpu!.caps, parallelism: c.parallelism ?? 1024 });
  return { plan, logits, slopes, cap };
}

/** Runs a case on WebGPU through the decode kernel and compares with the float64 oracle. */
async function checkDecode(c: DecodeCase, seed: number): Promise<number> {
  const { shape } = c;
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = shape;
  const dtype = c.dtype ?? "f32";
  const raw = problemData(shape, seed);
  const data = dtype === "f16"
    ? { q: roundF16(raw.q), k: roundF16(raw.k), v: roundF16(raw.v) }
    : raw;
  const make = (x: Float32Array, s: number[]) =>
    c.bnhd ? bnhdTensor(gpu!, x, s, dtype) : gpu!.tensor(x, s, dtype);
  const q = make(data.q, [batch, heads, qLen, headDim]);
  const k = make(data.k, [batch, kvHeads, kvLen, headDim]);
  const v = make(data.v, [batch, kvHeads, kvLen, valueDim]);
  const { plan, logits, slopes, cap } = planOf(c, { q, k, v });
  const at = JSON.stringify({ ...c, mask: c.mask?.name, splits: plan.splits, seed });
  assert(decodeFits(plan, workgroupBytes()), `decode: ${at}`);
  const result = await gpu!.run(plan, { q, k, v });
  const [out, lse] = await gpu!.readMany([result.out, result.lse!]);
  for (const t of [q, k, v, result.out, result.lse!]) gpu!.release(t);

  const modify: OracleCase["modify"] = c.mod === "softcap"
    ? (s) => cap * Math.tanh(s / cap)
    : c.mod === "alibi"
    ? (s, _b, h, i, j) => s + slopes[h] * (j - pos(i, qLen, kvLen))
    : undefined;
  const oc: OracleCase = {
    ...oracleCase(shape, data, 1 / Math.sqrt(headDim), c.mask),
    ...(modify ? { modify } : {}),
    ...(c.sinks ? { sinks: logits } : {}),
  };
  const ref = oracle(oc);
  // f16 storage: out is rounded to f16 once more.
  const slack = dtype === "f16" ? 2e-3 : 0;
  assertLessOrEqual(maxAbsError(out, ref.out), tolerance(oc, ref) + slack, `out: ${at}`);
  assertLessOrEqual(maxAbsError(lse, ref.lse), 1e-4 + slack, `lse: ${at}`);
  return plan.splits;
}

const shape = (
  s: Partial<Shape> & Pick<Shape, "qLen" | "kvLen" | "headDim">,
): Shape => ({ batch: 1, heads: 4, kvHeads: 1, valueDim: s.headDim, ...s });

const slidingWindow = (n: number): MaskCase => ({
  name: `window(${n - 1}, 0)`,
  expr: window(n - 1, 0),
  allowed: (_b, _h, i, j, nq, nk) => j <= pos(i, nq, nk) && j >= pos(i, nq, nk) - (n - 1),
});
const causalCase: MaskCase = {
  name: "causal",
  expr: causal(),
  allowed: (_b, _h, i, j, nq, nk) => j <= pos(i, nq, nk),
};
/** Per-head windows: head h sees its `sizes[h]` most recent keys. */
const headWindows = (sizes: number[]): MaskCase => ({
  name: `head windows ${sizes}`,
  expr: and(causal(), lt(sub(qPos, kvIdx), headParam(sizes))),
  allowed: (_b, h, i, j, nq, nk) => j <= pos(i, nq, nk) && pos(i, nq, nk) - j < sizes[h],
});
const prefix = (n: number): MaskCase => ({
  name: `keys >= ${n}`,
  expr: ge(kvIdx, n),
  allowed: (_b, _h, _i, j) => j >= n,
});

Deno.test({
  name: "decode kernel equals the oracle on odd and common head dims, value dims and lengths",
  ignore,
  fn: async () => {
    const cases: DecodeCase[] = [
      { shape: shape({ qLen: 1, kvLen: 1, headDim: 1 }) },
      { shape: shape({ qLen: 1, kvLen: 7, headDim: 24, heads: 8, kvHeads: 1 }) },
      { shape: shape({ qLen: 2, kvLen: 113, headDim: 72, valueDim: 24, heads: 2, kvHeads: 2 }) },
      { shape: shape({ qLen: 1, kvLen: 300, headDim: 64, valueDim: 72, heads: 6, kvHeads: 3 }) },
      { shape: shape({ qLen: 4, kvLen: 200, headDim: 128, heads: 4, kvHeads: 2, batch: 2 }) },
      { shape: shape({ qLen: 1, kvLen: 5000, headDim: 128, heads: 8, kvHeads: 2 }) },
      { shape: shape({ qLen: 3, kvLen: 129, headDim: 256, valueDim: 256, heads: 1 }) },
      { shape: shape({ qLen: 1, kvLen: 77, headDim: 256, valueDim: 1, heads: 2, kvHeads: 2 }) },
      { shape: shape({ qLen: 2, kvLen: 33, headDim: 3, valueDim: 130, heads: 8, kvHeads: 8 }) },
      { shape: shape({ qLen: 4, kvLen: 1000, headDim: 64, heads: 8, kvHeads: 2 }), sinks: true },
    ];
    for (const [i, c] of cases.entries()) await checkDecode(c, 11 + i);
  },
});

Deno.test({
  name: "decode kernel reads f16 storage and strided (BNHD) views",
  ignore,
  fn: async () => {
    const base = shape({ qLen: 2, kvLen: 333, headDim: 64, heads: 8, kvHeads: 2, batch: 2 });
    await checkDecode({ shape: base, dtype: "f16" }, 1);
    await checkDecode({ shape: base, bnhd: true }, 2);
    await checkDecode({ shape: base, bnhd: true, dtype: "f16" }, 3);
    const odd = shape({ qLen: 1, kvLen: 113, headDim: 72, valueDim: 24, heads: 4, kvHeads: 4 });
    await checkDecode({ shape: odd, dtype: "f16" }, 4);
    await checkDecode({ shape: odd, bnhd: true }, 5);
    const unaligned = shape({ qLen: 3, kvLen: 50, headDim: 7, valueDim: 5, heads: 2 });
    await checkDecode({ shape: unaligned, dtype: "f16", bnhd: true }, 6);
  },
});

Deno.test({
  name: "decode kernel applies masks, per-head windows, softcap, ALiBi and sink logits",
  ignore,
  fn: async () => {
    const s = shape({ qLen: 2, kvLen: 700, headDim: 64, heads: 4, kvHeads: 1 });
    await checkDecode({ shape: s, mask: causalCase }, 1);
    await checkDecode({ shape: s, mask: slidingWindow(100) }, 2);
    await checkDecode({ shape: s, mask: headWindows([5, 60, 300, 1000]), sinks: true }, 3);
    await checkDecode({ shape: s, mod: "softcap", mask: slidingWindow(37) }, 4);
    await checkDecode({ shape: s, mod: "alibi", sinks: true }, 5);
    await checkDecode({ shape: s, mod: "alibi", mask: prefix(650), dtype: "f16" }, 6);
    await checkDecode({ shape: s, sinks: true, mask: prefix(10_000) }, 7);
  },
});

Deno.test({
  name: "decode kernel key splits equal the oracle, with sinks joining once in the merge",
  ignore,
  fn: async () => {
    const seen = new Set<number>();
    const s = shape({ qLen: 1, kvLen: 4096, headDim: 128, heads: 8, kvHeads: 2 });
    for (const [i, parallelism] of [1, 64, 1 << 20].entries()) {
      seen.add(await checkDecode({ shape: s, sinks: true, parallelism }, i));
      seen.add(
        await checkDecode({ shape: s, mask: slidingWindow(500), dtype: "f16", parallelism }, i),
      );
    }
    const windows = headWindows([3, 100, 2000, 4096, 1, 17, 256, 4000]);
    seen.add(await checkDecode({ shape: s, mask: windows, parallelism: 1 << 20 }, 9));
    assert(seen.size >= 2, `split counts seen: ${[...seen]}`);
  },
});

Deno.test({
  name: "decode kernel equals the oracle on random decode shapes (fast-check)",
  ignore,
  fn: async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          batch: fc.integer({ min: 1, max: 2 }),
          kvHeads: fc.integer({ min: 1, max: 2 }),
          group: fc.constantFrom(1, 2, 3, 4, 8),
          qLen: fc.integer({ min: 1, max: 4 }),
          kvLen: fc.integer({ min: 1, max: 1500 }),
          headDim: fc.constantFrom(1, 24, 64, 72, 128, 256, 5, 40),
          valueDim: fc.option(fc.constantFrom(1, 24, 64, 72, 128, 256, 6), { nil: undefined }),
        }).map(({ group, ...r }) => ({
          ...r,
          heads: r.kvHeads * group,
          valueDim: r.valueDim ?? r.headDim,
          // Up to 8 rows (16-row kernels, in the cases above, take llvmpipe long to compile).
        })).filter((s) => s.qLen * s.heads / s.kvHeads <= 8),
        fc.constantFrom<"f32" | "f16">("f32", "f16"),
        fc.boolean(),
        fc.option(fc.constantFrom(causalCase, slidingWindow(64), slidingWindow(700)), {
          nil: undefined,
        }),
        fc.option(fc.constantFrom<"softcap" | "alibi">("softcap", "alibi"), { nil: undefined }),
        fc.boolean(),
        fc.constantFrom(1, 1024, 1 << 20),
        fc.integer({ min: 1, max: 1 << 30 }),
        async (s, dtype, bnhd, m, mod, sinks, parallelism, seed) => {
          const c = { shape: s, dtype, bnhd, sinks, parallelism, mask: m, mod };
          // Plans whose workgroup memory the device lacks run the flash kernel instead.
          fc.pre(decodeFits(planOf(c).plan, workgroupBytes()));
          await checkDecode(c, seed);
        },
      ),
      { numRuns: 12 },
    );
  },
});

Deno.test("decodeFits() takes flash plans whose query rows fit one tile of at most 16 rows", () => {
  const desc = (shape: number[]) => ({
    dtype: "f32" as const,
    shape,
    strides: [shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1],
    offset: 0,
  });
  const caps = {
    backend: "webgpu",
    families: ["materialized", "flash"] as const,
    dtypes: ["f32", "f16"] as const,
    flashTiles: [{ maxHeadDim: 256, tile: { q: 16, kv: 64 } }],
    anyTile: false,
    maxHeadDim: 256,
    materializeUpTo: 0,
    materializedScratch: "all-heads" as const,
    packGroups: true,
    engine: "wgsl",
    parallelism: 1024,
  };
  const plan = (qLen: number, heads: number, kvHeads: number, dim = 128) =>
    lower(
      groupHeads()(attention(
        desc([2, heads, qLen, dim]),
        desc([2, kvHeads, 4096, dim]),
        desc([2, kvHeads, 4096, dim]),
      )),
      caps,
    );
  assert(decodeFits(plan(1, 32, 8), 49152));
  assert(decodeFits(plan(4, 16, 4), 49152));
  assertEquals(decodeFits(plan(5, 16, 4), 49152), false, "20 rows: two row tiles");
  assertEquals(decodeFits(plan(64, 8, 8), 49152), false, "prefill");
  // 16 rows of D256 need more than WebGPU's default 16 KiB of workgroup memory.
  assertEquals(decodeFits(plan(4, 16, 4, 256)), false);
  assert(decodeFits(plan(4, 16, 4, 256), 49152));
});

Deno.test("decodeWgsl() compiles into one source per row count, with the flash bindings", () => {
  const src = decodeWgsl({
    headDim: 128,
    valueDim: 128,
    dtype: "f16",
    rows: 4,
    tileKv: 64,
    vec: true,
  });
  for (const binding of [0, 1, 2, 3, 4, 5, 6]) {
    assert(src.includes(`@binding(${binding})`), `binding ${binding}`);
  }
  assert(src.includes("@workgroup_size(256)"));
});
