/**
 * Decode on WebGPU (issues 12 and 13): one query token per sequence against a long KV, grouped
 * heads (32 query / 8 KV), D128, f16 and f32 storage, with the key range split over workgroups
 * as the backend chooses, unsplit, and split for other parallelism targets, beside PyTorch SDPA
 * decode in the same run; and the same decode over a paged pool (blocks of 16 slots handed out in
 * shuffled order, read through block tables) beside the contiguous kernel. Figures are KV bytes
 * read per second.
 *
 *     .gpu/run.sh deno run -A bench/decode_gpu.ts [--quick] out.json
 * @module
 */
import { attention, compose, groupHeads, lower, page, permute, tensorDesc } from "../core/mod.ts";
import { createWebGpuBackend } from "../backends/webgpu/mod.ts";
import { timePlan } from "./_gpu_timing.ts";
import { torchRows } from "./_torch.ts";

const quick = Deno.args.includes("--quick");
const outPath = Deno.args.find((a) => a.endsWith(".json")) ?? "bench/results/decode_gpu.json";
const [HEADS, KV_HEADS, DIM] = [32, 8, 128];
const cases = [
  { batch: 16, context: 8192 },
  { batch: 1, context: 32768 },
  { batch: 1, context: 131072 },
].map((c) => ({ ...c, context: quick ? c.context / 64 : c.context }));
const BLOCK = 16;
/** 0 … n-1 in a fixed pseudo-random order (a pool handed out over time). */
const shuffled = (n: number) => {
  const ids = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1, x = 12345; i > 0; i--) {
    x = (x * 1103515245 + 12345) >>> 0;
    const j = x % (i + 1);
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  return ids;
};
const gpu = await createWebGpuBackend();
const rows: Record<string, unknown>[] = [];
const log = (row: Record<string, unknown>) => (rows.push(row), console.log(JSON.stringify(row)));
const kvBytes = (c: typeof cases[0], bytes: number) =>
  2 * c.batch * KV_HEADS * c.context * DIM * bytes;

for (const c of cases) {
  for (const dtype of ["f16", "f32"] as const) {
    const fill = (n: number) => new Float32Array(n).map((_, i) => Math.sin(i * 0.37) * 0.5);
    const q = gpu.tensor(fill(c.batch * HEADS * DIM), [c.batch, HEADS, 1, DIM], dtype);
    const kvShape = [c.batch, KV_HEADS, c.context, DIM];
    const k = gpu.tensor(fill(c.batch * KV_HEADS * c.context * DIM), kvShape, dtype);
    const spec = groupHeads()(attention(q, k, k));
    // Paged: the same keys in a pool of 16-slot blocks, each sequence's blocks shuffled; blocks
    // token-major [block, slot, head, dim] (the KV cache's) and head-major [block, head, slot,
    // dim] seen through a permuted view (a head's rows of a block contiguous). Everything is
    // allocated before anything is timed, and each timing warms the GPU up for a second first:
    // filling the tensors leaves the GPU idle for seconds, and it then runs at a lower clock.
    const blocks = (c.batch * c.context) / BLOCK;
    const pages = { tables: shuffled(blocks), lengths: new Array(c.batch).fill(c.context) };
    const logical = tensorDesc([c.batch, KV_HEADS, c.context, DIM], dtype);
    const data = fill(blocks * BLOCK * KV_HEADS * DIM);
    const pools = {
      "token-major": gpu.tensor(data, [blocks, BLOCK, KV_HEADS, DIM], dtype),
      "head-major": permute(gpu.tensor(data, [blocks, KV_HEADS, BLOCK, DIM], dtype), [0, 2, 1, 3]),
    };
    const contiguous = lower(spec, gpu.caps);
    const timeContiguous = async (when: string) => {
      const ms = await timePlan(gpu, contiguous, { q, k, v: k }, 1000);
      log({
        impl: "attend flash",
        when,
        batch: c.batch,
        context: c.context,
        dtype,
        splits: contiguous.splits,
        ms,
        gbPerS: kvBytes(c, dtype === "f16" ? 2 : 4) / ms / 1e6,
      });
    };
    await timeContiguous("before paged");
    for (const [layout, pool] of Object.entries(pools)) {
      const paged = compose(groupHeads(), page({ k: pool, v: pool }))(
        attention(q, logical, logical),
      );
      const plan = gpu.plan(paged);
      const ms = await timePlan(gpu, plan, { q, k: pool, v: pool, pages }, 1000);
      log({
        impl: "attend paged",
        layout,
        batch: c.batch,
        context: c.context,
        dtype,
        blockSize: BLOCK,
        splits: plan.splits,
        ms,
        gbPerS: kvBytes(c, dtype === "f16" ? 2 : 4) / ms / 1e6,
      });
    }
    await timeContiguous("after paged");
    // Unsplit, then other parallelism targets (how splits pay).
    for (const parallelism of [undefined, 64, 256, 2048]) {
      const plan = lower(spec, { ...gpu.caps, parallelism });
      const ms = await timePlan(gpu, plan, { q, k, v: k });
      log({
        impl: "attend flash",
        batch: c.batch,
        context: c.context,
        dtype,
        tile: `${plan.tile.q}x${plan.tile.kv}`,
        parallelism: parallelism ?? "none",
        splits: plan.splits,
        ms,
        gbPerS: kvBytes(c, dtype === "f16" ? 2 : 4) / ms / 1e6,
      });
    }
    for (const t of [q, k, ...Object.values(pools)]) gpu.release(t);
  }
}

const torchScript = `
import json, torch
rows = []
for b, n in ${JSON.stringify(cases.map((c) => [c.batch, c.context]))}:
    for name, dt, size in (("f16", torch.float16, 2), ("f32", torch.float32, 4)):
        q = torch.randn(b, ${HEADS}, 1, ${DIM}, device="cuda", dtype=dt)
        k = torch.randn(b, ${KV_HEADS}, n, ${DIM}, device="cuda", dtype=dt)
        f = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, k, enable_gqa=True)
        f(); torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        iters = 50
        start.record()
        for _ in range(iters): f()
        end.record(); torch.cuda.synchronize()
        ms = start.elapsed_time(end) / iters
        gb = 2 * b * ${KV_HEADS} * n * ${DIM} * size / ms / 1e6
        rows.append(dict(impl="torch sdpa", batch=b, context=n, dtype=name, ms=ms, gbPerS=gb))
        print(json.dumps(rows[-1]), flush=True)
print("ROWS" + json.dumps(rows))
`;
if (!quick) { for (const row of await torchRows<Record<string, unknown>>(torchScript)) log(row); }
await Deno.writeTextFile(
  outPath,
  JSON.stringify({ device: gpu.adapterName, rows }, null, 2) + "\n",
);
gpu.dispose();
