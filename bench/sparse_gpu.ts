/**
 * Sparse attention on WebGPU (issue 11): a causal sliding window of 512 keys against dense causal
 * flash at N = 4k to 128k, BigBird and Longformer at 16k in useful TFLOP/s (computed entries
 * only) against dense (unmasked) flash, and the block layout's build time beside the kernel's.
 *
 *     .gpu/run.sh deno run -A bench/sparse_gpu.ts [--quick] out.json
 * @module
 */
import {
  and,
  attention,
  causal,
  compose,
  evaluate,
  explain,
  type Expr,
  kernel,
  lower,
  mask,
  or,
  tensorDesc,
  tileLists,
  window,
} from "../core/mod.ts";
import { bigBird, documents, globalTokens, hierarchical, slidingWindow } from "../variants/mod.ts";
import { createWebGpuBackend } from "../backends/webgpu/mod.ts";
import { timeAttention } from "./_gpu_timing.ts";

const quick = Deno.args.includes("--quick");
const outPath = Deno.args.find((a) => a.endsWith(".json")) ?? "bench/results/sparse_gpu.json";
const gpu = await createWebGpuBackend();
const scale = (n: number) => quick ? Math.max(256, n / 64) : n;
const HEADS = 16, DIM = 64;

/** Visible (query, key) pairs of a mask: full tiles counted whole, partial ones element-wise. */
function visiblePairs(m: Expr, n: number): number {
  const tileQ = 64, tileKv = 64;
  const lists = tileLists(m, { qLen: n, kvLen: n, tileQ, tileKv });
  let pairs = 0;
  const env = { b: 0, h: 0, qIdx: 0, kvIdx: 0, qLen: n, kvLen: n };
  for (let row = 0; row < lists.rows; row++) {
    const i0 = row * tileQ, i1 = Math.min(n, i0 + tileQ);
    for (let e = lists.rowStart[row]; e < lists.rowStart[row + 1]; e++) {
      const j0 = lists.tileCol[e] * tileKv, j1 = Math.min(n, j0 + tileKv);
      if (!lists.partial[e]) {
        pairs += (i1 - i0) * (j1 - j0);
        continue;
      }
      for (env.qIdx = i0; env.qIdx < i1; env.qIdx++) {
        for (env.kvIdx = j0; env.kvIdx < j1; env.kvIdx++) pairs += evaluate(m, env) ? 1 : 0;
      }
    }
  }
  return pairs;
}

const rows: Record<string, unknown>[] = [];
const log = (row: Record<string, unknown>) => (rows.push(row), console.log(JSON.stringify(row)));
const shape = (n: number, heads = HEADS) => ({ batch: 1, heads, n, dim: DIM });
const time = (n: number, m: Expr, heads = HEADS) =>
  timeAttention(gpu, shape(n, heads), { dtype: "f32", causal: false, family: "flash", mask: m });
const tflops = (pairs: number, ms: number, heads = HEADS) => 4 * heads * pairs * DIM / ms / 1e9;

// 1. Sliding window of 512 against dense causal.
for (const n of [4096, 16384, 65536, 131072].map(scale)) {
  const window512 = slidingWindow(512);
  const [causalPairs, windowPairs] = [n * (n + 1) / 2, visiblePairs(window512, n)];
  const causalMs = await time(n, causal());
  const windowMs = await time(n, window512);
  log({
    case: "sliding window 512 vs causal",
    n,
    causalMs,
    windowMs,
    speedup: causalMs / windowMs,
    ideal: causalPairs / windowPairs,
    ofIdeal: (causalMs / windowMs) / (causalPairs / windowPairs),
    windowTflops: tflops(windowPairs, windowMs),
    causalTflops: tflops(causalPairs, causalMs),
  });
}

// 2. BigBird and Longformer at 16k: useful TFLOP/s against dense flash.
{
  const n = scale(16384);
  const denseMs = await timeAttention(gpu, shape(n), {
    dtype: "f32",
    causal: false,
    family: "flash",
  });
  const denseTflops = tflops(n * n, denseMs);
  const patterns: Record<string, Expr> = {
    "bigBird(window 3, globals 2, random 3, block 64)": bigBird({
      window: 3,
      globals: 2,
      randomBlocks: 3,
      block: 64,
      seed: 1,
      length: n,
    }),
    "Longformer: window(256, 256) + 16 global tokens": or(
      window(256, 256),
      globalTokens(Array.from({ length: 16 }, (_, i) => i * Math.floor(n / 16))),
    ),
  };
  for (const [name, m] of Object.entries(patterns)) {
    const pairs = visiblePairs(m, n);
    const ms = await time(n, m);
    log({
      case: name,
      n,
      ms,
      density: pairs / (n * n),
      usefulTflops: tflops(pairs, ms),
      denseTflops,
      ofDense: tflops(pairs, ms) / denseTflops,
    });
  }
}

// 3. Layout build time beside the kernel's time.
{
  /** The first build (compiling the mask's bounds, JIT cold), then the best of five more. */
  const buildMs = (m: Expr, n: number, heads: number) => {
    const x = tensorDesc([1, heads, n, DIM]);
    const build = () => {
      const t0 = performance.now();
      const plan = lower(compose(mask(m), kernel("flash"))(attention(x, x, x)), gpu.caps);
      const { tile } = plan;
      tileLists(plan.mask, { qLen: n, kvLen: n, heads, tileQ: tile.q, tileKv: tile.kv });
      return performance.now() - t0;
    };
    const cold = build();
    return { cold, warm: Math.min(...Array.from({ length: 5 }, build)) };
  };
  const n64 = scale(65536);
  const docs = and(causal(), documents(Array.from({ length: 100 }, () => Math.floor(n64 / 100))));
  const n1m = scale(2 ** 20);
  for (
    const [name, m, n, heads] of [
      ["100 packed documents (causal)", docs, n64, HEADS],
      ["sliding window 512", slidingWindow(512), n1m, 4],
    ] as const
  ) {
    const build = buildMs(m, n, heads);
    const kernelMs = await time(n, m, heads);
    log({
      case: `layout build: ${name}`,
      n,
      heads,
      buildMs: build.warm,
      coldBuildMs: build.cold,
      kernelMs,
      ratio: build.warm / kernelMs,
      coldRatio: build.cold / kernelMs,
    });
  }
}

// 4. Per-head windows (one layout per head) against every head at the widest window, and
// hierarchical attention against dense causal flash, at 16k.
{
  const n = scale(16384);
  const widths = Array.from({ length: HEADS }, (_, h) => 64 << (h % 8));
  const perHeadMs = await time(n, slidingWindow(widths));
  const widestMs = await time(n, slidingWindow(Math.max(...widths)));
  log({ case: "per-head windows 64..8192 vs all 8192", n, perHeadMs, widestMs });
  const causalMs = await time(n, causal());
  for (const topK of [0, 16]) {
    const options = { window: 512, block: 32, stride: 16, topK };
    const s = shape(n);
    const c = { dtype: "f32" as const, causal: false, family: "flash" as const };
    const nsaMs = await timeAttention(gpu, s, { ...c, transforms: [hierarchical(options)] });
    const x = tensorDesc([1, HEADS, n, DIM]);
    const flops = explain(lower(hierarchical(options)(attention(x, x, x)), gpu.caps)).flops;
    log({
      case: `hierarchical ${JSON.stringify(options)}`,
      n,
      nsaMs,
      causalMs,
      tflops: flops / nsaMs / 1e9,
    });
  }
}

await Deno.writeTextFile(
  outPath,
  JSON.stringify({ device: gpu.adapterName, rows }, null, 2) + "\n",
);
gpu.dispose();
