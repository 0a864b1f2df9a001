import fc from "fast-check";
import { assert, assertEquals, assertLessOrEqual, assertThrows } from "@std/assert";
import {
  assertPlan,
  attention,
  compose,
  explain,
  groupHeads,
  kernel,
  kvIdx,
  lower,
  lt,
  mask,
  sinkLogits,
  type Transform,
} from "../../core/mod.ts";
import { cpuCaps } from "../../backends/cpu/mod.ts";
import {
  type MaskCase,
  maskCase,
  oracleCase,
  problemData,
  type Shape,
  shapeArb,
} from "../_arbitraries.ts";
import { maxAbsError, oracle, tolerance } from "../_oracle.ts";
import { roundF16 } from "../_run.ts";
import { gpu } from "../_webgpu.ts";

const ignore = gpu === undefined;

/** Runs on WebGPU with the plan lowered for a given parallelism (so a given number of splits). */
async function runSplit(
  shape: Shape,
  data: { q: Float32Array; k: Float32Array; v: Float32Array },
  transforms: Transform[],
  parallelism: number,
  dtype: "f32" | "f16" = "f32",
) {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = shape;
  const q = gpu!.tensor(data.q, [batch, heads, qLen, headDim], dtype);
  const k = gpu!.tensor(data.k, [batch, kvHeads, kvLen, headDim], dtype);
  const v = gpu!.tensor(data.v, [batch, kvHeads, kvLen, valueDim], dtype);
  const spec = compose(groupHeads(), kernel("flash"), ...transforms)(
    attention(q, k, v, { lse: true }),
  );
  const plan = lower(spec, { ...gpu!.caps, parallelism });
  const result = await gpu!.run(plan, { q, k, v });
  const [out, lse] = await gpu!.readMany([result.out, result.lse!]);
  for (const t of [q, k, v, result.out, result.lse!]) gpu!.release(t);
  return { out, lse, splits: plan.splits };
}

Deno.test({
  name: "webgpu key splits (Flash-Decoding) equal the oracle for any split count",
  ignore,
  fn: async () => {
    const seen = new Set<number>();
    await fc.assert(
      fc.asyncProperty(
        // Few query rows and enough keys for several splits of 64-key tiles on any device.
        shapeArb({ batch: 2, len: 200, dim: 40 }).map((s) => ({
          ...s,
          qLen: 1 + (s.qLen % 5),
          kvLen: 4 * s.kvLen + 256,
        })),
        fc.option(maskCase, { nil: undefined }),
        fc.boolean(),
        fc.constantFrom(1, 64, 256, 1024, 1 << 20),
        fc.integer({ min: 1, max: 1 << 30 }),
        async (shape, m, sinks, parallelism, seed) => {
          const data = problemData(shape, seed);
          const logits = Array.from({ length: shape.heads }, (_, h) => (h % 3) - 1);
          const c = {
            ...oracleCase(shape, data, 1 / Math.sqrt(shape.headDim), m),
            ...(sinks ? { sinks: logits } : {}),
          };
          const ref = oracle(c);
          const got = await runSplit(shape, data, [
            ...(m ? [mask(m.expr)] : []),
            ...(sinks ? [sinkLogits(logits)] : []),
          ], parallelism);
          seen.add(got.splits);
          const at = JSON.stringify({ shape, mask: m?.name, sinks, splits: got.splits });
          assertLessOrEqual(maxAbsError(got.out, ref.out), tolerance(c, ref), at);
          assertLessOrEqual(maxAbsError(got.lse, ref.lse), 1e-4, at);
        },
      ),
      { numRuns: 16 },
    );
    assert(seen.size > 2, `split counts seen: ${[...seen]}`);
  },
});

Deno.test({
  name: "webgpu key splits with no key in most splits, f16 storage, and empty rows",
  ignore,
  fn: async () => {
    const shape = {
      batch: 1,
      heads: 4,
      kvHeads: 2,
      qLen: 2,
      kvLen: 4096,
      headDim: 24,
      valueDim: 24,
    };
    const raw = problemData(shape, 9);
    const data = { q: roundF16(raw.q), k: roundF16(raw.k), v: roundF16(raw.v) };
    // The first 108 keys only: all but the first split see nothing; then no key at all.
    const few: MaskCase = {
      name: "keys 0..107",
      expr: lt(kvIdx, 108),
      allowed: (_b, _h, _i, j) => j < 108,
    };
    const c = oracleCase(shape, data, 1 / Math.sqrt(24), few);
    const ref = oracle(c);
    const got = await runSplit(shape, data, [mask(few.expr)], 1 << 20, "f16");
    assert(got.splits > 4, `splits ${got.splits}`);
    assertLessOrEqual(maxAbsError(got.out, ref.out), tolerance(c, ref) + 2e-3);
    const none = await runSplit(shape, data, [mask(lt(kvIdx, 0))], 1 << 20);
    assert(none.out.every((x) => x === 0));
    assert(none.lse.every((x) => x === -Infinity));
  },
});

Deno.test("lower() splits the keys of decode-shaped flash plans only, and explain() says so", () => {
  const q = {
    dtype: "f32" as const,
    shape: [16, 32, 1, 128],
    strides: [4096, 128, 128, 1],
    offset: 0,
  };
  const kv = {
    dtype: "f32" as const,
    shape: [16, 8, 8192, 128],
    strides: [8 * 8192 * 128, 8192 * 128, 128, 1],
    offset: 0,
  };
  const spec = groupHeads()(attention(q, kv, kv));
  const caps = { ...cpuCaps, packGroups: true, parallelism: 1024 };
  const decode = lower(spec, caps);
  // 16 sequences × 8 KV heads = 128 workgroups: 8 splits reach 1024.
  assertEquals(decode.splits, 8);
  assert(explain(decode).summary.includes("keys split 8 ways"));
  assertEquals(lower(spec, { ...caps, parallelism: undefined }).splits, 1, "no parallelism");
  const prefill = {
    ...q,
    shape: [16, 32, 8192, 128],
    strides: [32 * 8192 * 128, 8192 * 128, 128, 1],
  };
  assertEquals(lower(groupHeads()(attention(prefill, kv, kv)), caps).splits, 1);
  assertThrows(
    () => assertPlan({ ...decode, splits: 65 }),
    RangeError,
    "plan.splits must be an integer in 1..64",
  );
});
