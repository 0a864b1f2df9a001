/**
 * Flash tuning sweep on the WebGPU device: tile × keys per invocation × inner-loop unrolling,
 * f32, through the public backend options. Use it to pick `createWebGpuBackend` options on a new
 * GPU; figures for the H100 are in bench/RESULTS.md.
 *
 *     deno run -A bench/flash_sweep.ts [--quick] [out.json]
 *     (on the GPU machine: .gpu/run.sh deno run -A bench/flash_sweep.ts out.json)
 * @module
 */
import { createWebGpuBackend } from "../backends/webgpu/mod.ts";
import { attentionFlops, shapeLabel, timeAttention } from "./_gpu_timing.ts";

const quick = Deno.args.includes("--quick");
const outPath = Deno.args.find((a) => a.endsWith(".json"));
const shapes = [
  { batch: 1, heads: 32, n: quick ? 256 : 4096, dim: 128 },
  { batch: 4, heads: 16, n: quick ? 128 : 2048, dim: 64 },
];
const tiles = quick ? [{ q: 16, kv: 16 }] : [{ q: 128, kv: 64 }, { q: 64, kv: 64 }];
const rows: Record<string, unknown>[] = [];
for (const flashTile of tiles) {
  for (const flashKeysPerThread of [4, 8] as const) {
    for (const flashUnroll of quick ? [1, 4] : [4, 8, 16, 32]) {
      const gpu = await createWebGpuBackend({ flashTile, flashKeysPerThread, flashUnroll });
      try {
        for (const s of shapes) {
          const ms = await timeAttention(gpu, s, { dtype: "f32", causal: false, family: "flash" });
          const row = {
            device: gpu.adapterName,
            tile: `${flashTile.q}x${flashTile.kv}`,
            keysPerThread: flashKeysPerThread,
            unroll: flashUnroll,
            shape: shapeLabel(s),
            ms: +ms.toFixed(3),
            tflops: +(attentionFlops(s, false) / ms / 1e9).toFixed(2),
          };
          console.log(JSON.stringify(row));
          rows.push(row);
        }
      } finally {
        gpu.dispose();
      }
    }
  }
}
if (outPath) await Deno.writeTextFile(outPath, JSON.stringify(rows, null, 1));
