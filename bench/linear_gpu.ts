/**
 * Linear attention on WebGPU (issue 14): causal chunked linear attention (elu + 1 map, the
 * plan's chunk) at N = 4k to 128k, B1 H16 D64 f32, beside causal flash on the same shapes; the
 * N = 128k / N = 8k time ratio (linear scaling gives 16; the target is at most 18); the first
 * length where linear beats flash (the crossover); recurrent decode (one token per call, the
 * state carried) at batch 64 in tokens per second, and the state's bytes per sequence.
 *
 *     .gpu/run.sh deno run -A bench/linear_gpu.ts [--quick] out.json
 *
 * `--quick` divides the lengths by 64 (at least 64) and runs fewer decode steps, for software
 * adapters.
 * @module
 */
import { attention, causal, compose, linearStateShape, mask } from "../core/mod.ts";
import { linear } from "../variants/mod.ts";
import { createWebGpuBackend } from "../backends/webgpu/mod.ts";
import type { Tensor } from "../backends/backend.ts";
import { linearState } from "../linear_state.ts";
import { timeAttention, timePlan } from "./_gpu_timing.ts";

const quick = Deno.args.includes("--quick");
const outPath = Deno.args.find((a) => a.endsWith(".json")) ?? "bench/results/linear_gpu.json";
const gpu = await createWebGpuBackend();
const [HEADS, DIM, DECODE_BATCH] = [16, 64, 64];
const lengths = [4096, 8192, 16384, 32768, 65536, 131072].map((n) =>
  quick ? Math.max(64, n / 64) : n
);
const rows: Record<string, unknown>[] = [];
const log = (row: Record<string, unknown>) => (rows.push(row), console.log(JSON.stringify(row)));
const fill = (n: number) => new Float32Array(n).map((_, i) => Math.sin(i * 0.37) * 0.5);

/** Milliseconds per causal linear run at length `n`, and the plan's chunk. */
async function timeLinear(n: number): Promise<{ ms: number; chunk: number }> {
  const x = gpu.tensor(fill(HEADS * n * DIM), [1, HEADS, n, DIM]);
  const plan = gpu.plan(compose(mask(causal()), linear("elu"))(attention(x, x, x)));
  // Runs return a new state each time: timePlan() releases only `out`, so release it here.
  const run = gpu.run.bind(gpu);
  const releasing = {
    ...gpu,
    run: async (...args: Parameters<typeof run>) => {
      const r = await run(...args);
      if (r.state) gpu.release(r.state);
      return r;
    },
  };
  const ms = await timePlan(releasing, plan, { q: x, k: x, v: x });
  gpu.release(x);
  return { ms, chunk: plan.tile.kv };
}

const linearMs = new Map<number, number>();
let crossover: number | undefined;
for (const n of lengths) {
  const { ms, chunk } = await timeLinear(n);
  linearMs.set(n, ms);
  const shape = { batch: 1, heads: HEADS, n, dim: DIM };
  const flashMs = await timeAttention(gpu, shape, { dtype: "f32", causal: true, family: "flash" });
  if (crossover === undefined && ms < flashMs) crossover = n;
  log({
    impl: "attend linear causal",
    map: "elu",
    batch: 1,
    heads: HEADS,
    n,
    dim: DIM,
    dtype: "f32",
    chunk,
    ms,
    flashMs,
    speedupOverFlash: flashMs / ms,
    tokensPerS: n / ms * 1e3,
  });
}
const [short, long] = [lengths[1], lengths.at(-1)!];
log({
  impl: "attend linear causal",
  metric: `time ratio N${long} / N${short}`,
  ratio: linearMs.get(long)! / linearMs.get(short)!,
  linearWouldBe: long / short,
  target: quick ? undefined : 18,
});
log({
  impl: "attend linear causal",
  metric: "crossover against causal flash",
  firstLengthFaster: crossover ?? null,
  testedUpTo: long,
});

// Recurrent decode: one token per sequence per call, the state carried from call to call.
{
  const shape = [DECODE_BATCH, HEADS, 1, DIM];
  const token = gpu.tensor(fill(DECODE_BATCH * HEADS * DIM), shape);
  const plan = gpu.plan(compose(mask(causal()), linear("elu"))(attention(token, token, token)));
  let state: Tensor = linearState(gpu, plan);
  const step = async () => {
    const r = await gpu.run(plan, { q: token, k: token, v: token, state });
    gpu.release(state), gpu.release(r.out);
    state = r.state!;
  };
  await step();
  await gpu.sync();
  const steps = quick ? 16 : 256;
  const start = performance.now();
  for (let i = 0; i < steps; i++) await step();
  await gpu.sync();
  const ms = (performance.now() - start) / steps;
  const stateShape = linearStateShape(plan);
  log({
    impl: "attend linear decode",
    map: "elu",
    batch: DECODE_BATCH,
    heads: HEADS,
    dim: DIM,
    dtype: "f32",
    chunk: plan.tile.kv,
    msPerStep: ms,
    tokensPerS: DECODE_BATCH / ms * 1e3,
    stateBytesPerSequence: 4 * stateShape.slice(1).reduce((a, b) => a * b, 1),
  });
  gpu.release(state), gpu.release(token);
}

await Deno.writeTextFile(
  outPath,
  JSON.stringify({ device: gpu.adapterName, quick, rows }, null, 2) + "\n",
);
gpu.dispose();
