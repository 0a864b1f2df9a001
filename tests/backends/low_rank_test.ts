import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  attention,
  causal,
  compose,
  explain,
  groupHeads,
  mask,
  tensorDesc,
  UnsupportedSpecError,
} from "../../core/mod.ts";
import { lowRank } from "../../variants/mod.ts";
import { createCpuBackend } from "../../backends/cpu/mod.ts";
import { gpu } from "../_webgpu.ts";
import {
  lowRankArb,
  lowRankData,
  lowRankPropertyTests,
  runLowRank,
} from "../_low_rank_properties.ts";
import { maxAbsError } from "../_oracle.ts";
import fc from "fast-check";
import { lt, qIdx } from "../../core/expr.ts";

const cpu = createCpuBackend();
lowRankPropertyTests(cpu, "cpu", 60);
// llvmpipe compiles a flash kernel per shape: fewer runs there.
if (gpu) lowRankPropertyTests(gpu, "webgpu", 10);

Deno.test({
  name: "webgpu: lowRank() equals the CPU backend on random shapes",
  ignore: gpu === undefined,
  fn: async () => {
    await fc.assert(
      fc.asyncProperty(lowRankArb, async (p) => {
        const data = lowRankData(p);
        const [a, b] = [await runLowRank(gpu!, p, data), await runLowRank(cpu, p, data)];
        assert(maxAbsError(a.out, b.out) <= (p.dtype === "f16" ? 2e-2 : 1e-4), "out");
      }),
      { numRuns: 6, verbose: true },
    );
  },
});

Deno.test("lowRank() plans the attention over k projected rows, and explain() shows the projection", () => {
  const q = tensorDesc([2, 4, 100, 16]);
  const kv = tensorDesc([2, 2, 300, 16]);
  const e = tensorDesc([2, 32, 300]);
  const plan = cpu.plan(
    compose(groupHeads(), lowRank(e, tensorDesc([32, 300])))(attention(q, kv, kv)),
  );
  assertEquals(plan.sizes.kvLen, 32);
  assertEquals(plan.lowRank?.k.shape, [2, 2, 300, 16]);
  const report = explain(plan);
  assert(report.summary.includes("low-rank 300 keys projected to 32 rows"), report.summary);
  // Projection: 2 · (B·Hkv·k·(D + Dv)) · Nk multiply-adds.
  assert(report.flops >= 2 * (2 * 2 * 32 * 32) * 300);
  const other = cpu.plan(compose(groupHeads(), lowRank(e, e))(attention(q, kv, kv)));
  assert(other.key !== plan.key, "the projections' shapes are part of the key");
});

Deno.test("lowRank() keeps masks over queries only, and refuses causal by name", async () => {
  const x = cpu.tensor(new Float32Array(1 * 1 * 8 * 4).fill(1), [1, 1, 8, 4]);
  const e = cpu.tensor(new Float32Array(4 * 8).fill(0.125), [4, 8]);
  const rowsBelow3 = lt(qIdx, 3);
  const spec = compose(mask(rowsBelow3), lowRank(e, e))(attention(x, x, x));
  const y = await cpu.read((await cpu.run(cpu.plan(spec), { q: x, k: x, v: x, e, f: e })).out);
  assertEquals([y[0], y[3 * 4]], [1, 0]);
  assertThrows(
    () => cpu.plan(compose(mask(causal()), lowRank(e, e))(attention(x, x, x))),
    UnsupportedSpecError,
    "mask with lowRank() (projected keys have no position) is unsupported, current value is causal()",
  );
  await assertRejects(
    async () => await cpu.run(cpu.plan(spec), { q: x, k: x, v: x, e }),
    TypeError,
    "f must be the low-rank projection tensor [4,8]",
  );
});

Deno.test({
  name: "webgpu: lowRank() at Nq = Nk = 2048 holds the projected rows, never an Nq×Nk buffer",
  ignore: gpu === undefined,
  fn: async () => {
    const [n, d, rows] = [2048, 16, 32];
    const x = gpu!.tensor(new Float32Array(n * d).fill(0.5), [1, 1, n, d]);
    const e = gpu!.tensor(new Float32Array(rows * n).fill(1 / n), [rows, n]);
    const spec = lowRank(e, e)(attention(x, x, x));
    const plan = gpu!.plan(spec);
    await gpu!.prepare(plan);
    gpu!.resetPeak();
    const before = gpu!.stats().liveBytes;
    const { out } = await gpu!.run(plan, { q: x, k: x, v: x, e, f: e });
    const y = await gpu!.read(out);
    assert(Math.abs(y[0] - 0.5) < 1e-5, `got ${y[0]}`);
    const extra = gpu!.stats().peakBytes - before;
    assert(extra < n * n, `peak ${extra} bytes over the inputs: an Nq×Nk buffer is ${4 * n * n}`);
    for (const t of [x, e, out]) gpu!.release(t);
  },
});
