/**
 * Flash tuning sweep on the WebGPU device: tile × keys per invocation × inner-loop unrolling,
 * f32, through the public backend options. Use it to pick `createWebGpuBackend` options on a new
 * GPU; figures for the H100 are in bench/RESULTS.md. `--configs=128x64/4/16,128x64/8/8`
 * (tile/keys/unroll) replaces the default list.
 *
 *     deno run -A bench/flash_sweep.ts [--quick] [--configs=...] [out.json]
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
const listed = Deno.args.find((a) => a.startsWith("--configs="))?.slice("--configs=".length);
// Default: every tile × keys per invocation × unrolling of the study in bench/RESULTS.md.
const product = (tiles: string[], unrolls: number[]) =>
  tiles.flatMap((t) => [4, 8].flatMap((k) => unrolls.map((u) => `${t}/${k}/${u}`))).join(",");
const configs = (listed ??
  (quick ? product(["16x16"], [1, 4]) : product(["128x64", "64x64"], [4, 8, 16, 32])))
  .split(",").map((c) => {
    const [tile, keys, unroll] = c.split("/");
    const [q, kv] = tile.split("x").map(Number);
    return {
      flashTile: { q, kv },
      flashKeysPerThread: Number(keys) as 4 | 8,
      flashUnroll: Number(unroll),
    };
  });
const rows: Record<string, unknown>[] = [];
for (const options of configs) {
  const gpu = await createWebGpuBackend(options);
  try {
    for (const s of shapes) {
      const ms = await timeAttention(gpu, s, { dtype: "f32", causal: false, family: "flash" });
      const row = {
        device: gpu.adapterName,
        tile: `${options.flashTile.q}x${options.flashTile.kv}`,
        keysPerThread: options.flashKeysPerThread,
        unroll: options.flashUnroll,
        engine: gpu.caps.engine,
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
if (outPath) await Deno.writeTextFile(outPath, JSON.stringify(rows, null, 1));
