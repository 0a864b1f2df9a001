/**
 * The GPU report: flash (f32 and f16 storage, causal and not) and materialized attention on
 * WebGPU, and PyTorch SDPA fp32 (memory-efficient and math) measured in the same run.
 *
 *     deno task bench:gpu [--quick] [out.json]
 *
 * On the GPU machine, which has no network, run it with `deno run` (`deno task` first caches the
 * config's npm packages, such as the tests' fast-check, and fails offline):
 *
 *     .gpu/run.sh deno run -A bench/gpu.ts out.json
 *
 * TFLOP/s count `4·B·H·Nq·Nk·D`, halved for causal.
 * @module
 */
import type { KernelFamily } from "../core/mod.ts";
import { attentionFlops, shapeLabel, timeAttention } from "./_gpu_timing.ts";
import { sdpaScript, torchRows } from "./_torch.ts";
import { createWebGpuBackend } from "../backends/webgpu/mod.ts";

interface Row {
  impl: string;
  shape: string;
  causal: boolean;
  dtype: string;
  ms: number;
  tflops: number;
}

const shapes = [
  { batch: 1, heads: 32, n: 4096, dim: 128 },
  { batch: 4, heads: 16, n: 2048, dim: 64 },
  { batch: 1, heads: 32, n: 16384, dim: 64 },
];
const quick = Deno.args.includes("--quick");
const outPath = Deno.args.find((a) => a.endsWith(".json")) ?? "bench/results/gpu.json";
const gpu = await createWebGpuBackend();
const rows: Row[] = [];
const scaled = (s: typeof shapes[0]) => ({ ...s, n: quick ? Math.max(64, s.n / 16) : s.n });
const timeRun = (
  s: typeof shapes[0],
  dtype: "f32" | "f16",
  causal: boolean,
  family: KernelFamily,
) => timeAttention(gpu, s, { dtype, causal, family });

for (const s of shapes.map(scaled)) {
  for (const isCausal of [false, true]) {
    for (const dtype of ["f32", "f16"] as const) {
      const ms = await timeRun(s, dtype, isCausal, "flash");
      rows.push({
        impl: "attend flash",
        shape: shapeLabel(s),
        causal: isCausal,
        dtype,
        ms,
        tflops: attentionFlops(s, isCausal) / ms / 1e9,
      });
      console.log(JSON.stringify(rows.at(-1)));
    }
    if (s.n <= 4096) {
      const ms = await timeRun(s, "f32", isCausal, "materialized");
      rows.push({
        impl: "attend materialized",
        shape: shapeLabel(s),
        causal: isCausal,
        dtype: "f32",
        ms,
        tflops: attentionFlops(s, isCausal) / ms / 1e9,
      });
      console.log(JSON.stringify(rows.at(-1)));
    }
  }
}

const torchShapes = shapes.map((s) => [s.batch, s.heads, s.n, s.dim] as const);
if (!quick) rows.push(...await torchRows<Row>(sdpaScript(torchShapes)));

const report = { device: gpu.adapterName, date: new Date().toISOString(), rows };
await Deno.mkdir(outPath.replace(/\/[^/]*$/, ""), { recursive: true }).catch(() => {});
await Deno.writeTextFile(outPath, JSON.stringify(report, null, 2));
console.table(rows.map((r) => ({ ...r, ms: r.ms.toFixed(3), tflops: r.tflops.toFixed(2) })));
gpu.dispose();
