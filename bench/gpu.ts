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
import { torchRows } from "./_torch.ts";
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

const torchScript = `
import json, torch
from torch.nn.attention import sdpa_kernel, SDPBackend
torch.backends.cuda.matmul.allow_tf32 = False
rows = []
for b, h, n, d in ${JSON.stringify(shapes.map((s) => [s.batch, s.heads, s.n, s.dim]))}:
    q = torch.randn(b, h, n, d, device="cuda", dtype=torch.float32)
    for causal in (False, True):
        for name, backend in (("memory-efficient", SDPBackend.EFFICIENT_ATTENTION), ("math", SDPBackend.MATH)):
            if name == "math" and b * h * n * n * 4 > 8e9:
                continue
            with sdpa_kernel(backend):
                f = lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=causal)
                f(); torch.cuda.synchronize()
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                iters = 10
                start.record()
                for _ in range(iters): f()
                end.record(); torch.cuda.synchronize()
                ms = start.elapsed_time(end) / iters
            flops = 4 * b * h * n * n * d * (0.5 if causal else 1)
            rows.append(dict(impl="torch sdpa " + name, shape=f"B{b} H{h} N{n} D{d}", causal=causal, dtype="f32", ms=ms, tflops=flops / ms / 1e9))
            print(json.dumps(rows[-1]), flush=True)
print("ROWS" + json.dumps(rows))
`;
if (!quick) rows.push(...await torchRows<Row>(torchScript));

const report = { device: gpu.adapterName, date: new Date().toISOString(), rows };
await Deno.mkdir(outPath.replace(/\/[^/]*$/, ""), { recursive: true }).catch(() => {});
await Deno.writeTextFile(outPath, JSON.stringify(report, null, 2));
console.table(rows.map((r) => ({ ...r, ms: r.ms.toFixed(3), tflops: r.tflops.toFixed(2) })));
gpu.dispose();
