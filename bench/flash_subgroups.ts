/**
 * The flash kernel with and without subgroup row reductions (issue 12), beside PyTorch's fp32
 * memory-efficient SDPA in the same run: f32 and f16 storage, causal and not, and each
 * variant's first-use compile time (`prepare()` of a new plan on a new backend).
 *
 *     .gpu/run.sh deno run -A bench/flash_subgroups.ts [--quick] out.json
 *
 * TFLOP/s count `4·B·H·Nq·Nk·D`, halved for causal.
 * @module
 */
import { attention, causal, compose, kernel, mask } from "../core/mod.ts";
import { createWebGpuBackend } from "../backends/webgpu/mod.ts";
import { attentionFlops, shapeLabel, timeAttention } from "./_gpu_timing.ts";
import { sdpaScript, torchRows } from "./_torch.ts";

const quick = Deno.args.includes("--quick");
const outPath = Deno.args.find((a) => a.endsWith(".json")) ?? "bench/results/flash_subgroups.json";
const shapes = [
  { batch: 1, heads: 32, n: 4096, dim: 128 },
  { batch: 4, heads: 16, n: 2048, dim: 64 },
  { batch: 1, heads: 32, n: 16384, dim: 64 },
].map((s) => ({ ...s, n: quick ? Math.max(64, s.n / 32) : s.n }));
const rows: Record<string, unknown>[] = [];
const log = (row: Record<string, unknown>) => (rows.push(row), console.log(JSON.stringify(row)));

for (const flashSubgroups of [false, true]) {
  const gpu = await createWebGpuBackend({ flashSubgroups });
  const engine = gpu.caps.engine;
  // First use: a plan whose pipeline this backend has not built.
  const x = gpu.tensor(new Float32Array(shapes[0].heads * 64 * shapes[0].dim), [
    1,
    shapes[0].heads,
    64,
    shapes[0].dim,
  ]);
  const t0 = performance.now();
  await gpu.prepare(gpu.plan(compose(kernel("flash"), mask(causal()))(attention(x, x, x))));
  log({ case: "first-use compile", engine, ms: performance.now() - t0 });
  gpu.release(x);
  for (const s of shapes) {
    for (const isCausal of [false, true]) {
      for (const dtype of ["f32", "f16"] as const) {
        const ms = await timeAttention(gpu, s, { dtype, causal: isCausal, family: "flash" });
        const tflops = attentionFlops(s, isCausal) / ms / 1e9;
        log({ engine, shape: shapeLabel(s), causal: isCausal, dtype, ms, tflops });
      }
    }
  }
  log({ engine, subgroups: gpu.caps.subgroups, subgroupSizes: gpu.caps.subgroupSizes });
  gpu.dispose();
}
if (!quick) {
  const torchShapes = shapes.map((s) => [s.batch, s.heads, s.n, s.dim] as const);
  for (const row of await torchRows<Record<string, unknown>>(sdpaScript(torchShapes, false))) {
    log(row);
  }
}
await Deno.writeTextFile(outPath, JSON.stringify({ rows }, null, 2) + "\n");
