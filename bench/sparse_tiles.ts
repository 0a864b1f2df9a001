/**
 * Which flash tile runs a narrow sliding window fastest on the device (issue 11's tile table):
 * dense causal and sliding windows of 128 to 2048 keys at N = 16k, B1 H16 D64 f32, for every
 * tile the WebGPU caps offer.
 *
 *     .gpu/run.sh deno run -A bench/sparse_tiles.ts out.json
 * @module
 */
import { attention, causal, compose, type Expr, kernel, mask, tile } from "../core/mod.ts";
import { slidingWindow } from "../variants/mod.ts";
import { createWebGpuBackend } from "../backends/webgpu/mod.ts";

const quick = Deno.args.includes("--quick");
const outPath = Deno.args.find((a) => a.endsWith(".json")) ?? "bench/results/sparse_tiles.json";
const gpu = await createWebGpuBackend();
const n = quick ? 512 : 16384, heads = 16, dim = 64;
const x = gpu.tensor(new Float32Array(heads * n * dim).map((_, i) => Math.sin(i * 0.37)), [
  1,
  heads,
  n,
  dim,
]);
const masks: [string, Expr][] = [
  ["causal", causal()],
  ...[128, 512, 2048].map((w): [string, Expr] => [`window ${w}`, slidingWindow(w)]),
];
const rows = [];
for (const [name, m] of masks) {
  for (const { tile: t } of gpu.caps.flashTiles) {
    const plan = gpu.plan(compose(kernel("flash"), mask(m), tile(t))(attention(x, x, x)));
    const once = async () => gpu.release((await gpu.run(plan, { q: x, k: x, v: x })).out);
    await once();
    await gpu.sync();
    let iters = 1, ms = 0;
    for (;;) {
      const start = performance.now();
      for (let i = 0; i < iters; i++) await once();
      await gpu.sync();
      ms = (performance.now() - start) / iters;
      if (ms * iters > 300 || iters >= 64) break;
      iters *= 4;
    }
    rows.push({ mask: name, tile: `${t.q}x${t.kv}`, ms });
    console.log(JSON.stringify(rows.at(-1)));
  }
}
await Deno.writeTextFile(
  outPath,
  JSON.stringify({ device: gpu.adapterName, n, rows }, null, 2) + "\n",
);
gpu.dispose();
