/**
 * The WebGPU backward pass (issue 15) beside PyTorch's fp32 memory-efficient SDPA backward in the
 * same run: TFLOP/s at B1 H32 N4096 D128, causal and not (FLOPs counted as 2.5× the forward's
 * `4·B·H·N²·D`, halved for causal), and peak device memory of forward + backward at N = 16k
 * (the pool's peak bytes; PyTorch's `max_memory_allocated`), inputs and gradients included.
 *
 * `ms` times `BATCH` backward calls issued back to back and awaited once (`sync()`), per call, as
 * PyTorch's figure times 10 calls between two CUDA events: Deno's WebGPU learns that submitted
 * work is done by polling, about 11 ms late (`onSubmittedWorkDone` and `mapAsync` alike, even on
 * an idle device), so one awaited call's wall time is its GPU time plus that delay. `msAwaited`
 * is the median of 5 calls awaited one by one, as measured before (delay included);
 * `endToEndMs` what a caller waits for, warm: `vjp()` (plan and forward), `backward()` and the
 * three gradients read back; `firstForwardMs` / `firstBackwardMs` the first forward and backward
 * calls of a plan, pipeline compilation included.
 *
 *     .gpu/run.sh deno run -A bench/backward_gpu.ts [--quick] [--speed-only] out.json
 *
 * `--speed-only` times the backward alone (no peak memory, no PyTorch): for comparing variant
 * trees in one device run.
 * @module
 */
import { attention, causal, mask } from "../core/mod.ts";
import { createWebGpuBackend } from "../backends/webgpu/mod.ts";
import { vjp } from "../vjp.ts";
import { attentionFlops, shapeLabel } from "./_gpu_timing.ts";
import { torchRows } from "./_torch.ts";

const quick = Deno.args.includes("--quick");
const speedOnly = Deno.args.includes("--speed-only");
/** Backward calls per batch timed back to back. */
const BATCH = quick ? 2 : 20;
const outPath = Deno.args.find((a) => a.endsWith(".json")) ?? "bench/results/backward_gpu.json";
const speed = { batch: 1, heads: 32, n: quick ? 256 : 4096, dim: 128 };
const memory = { batch: 1, heads: 32, n: quick ? 512 : 16384, dim: 128 };
const rows: Record<string, unknown>[] = [];
const log = (row: Record<string, unknown>) => (rows.push(row), console.log(JSON.stringify(row)));

const gpu = await createWebGpuBackend();
const random = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);

/** Forward and `iters` timed backward passes; the pool's peak over forward + first backward. */
async function run(s: typeof speed, isCausal: boolean, iters: number) {
  await gpu.sync();
  gpu.resetPeak();
  const before = gpu.stats().liveBytes;
  const shape = [s.batch, s.heads, s.n, s.dim];
  const [q, k, v, dOut] = [0, 1, 2, 3].map(() =>
    gpu.tensor(random(s.batch * s.heads * s.n * s.dim), shape)
  );
  const spec = isCausal ? mask(causal())(attention(q, k, v)) : attention(q, k, v);
  // First use: the forward and the backward pass with their pipelines compiled on the way.
  let t = performance.now();
  const forward = await vjp(gpu, spec, { q, k, v });
  await gpu.sync();
  const firstForwardMs = performance.now() - t;
  t = performance.now();
  const first = await forward.backward(dOut);
  await gpu.sync();
  const firstBackwardMs = performance.now() - t;
  for (const x of [first.dq, first.dk, first.dv]) gpu.release(x);
  // A second of backward passes first: the GPU idles at a low clock while the host fills tensors.
  for (const start = performance.now(); performance.now() - start < (iters ? 1000 : 0);) {
    const g = await forward.backward(dOut);
    await gpu.sync();
    for (const x of [g.dq, g.dk, g.dv]) gpu.release(x);
  }
  const times: number[] = [];
  for (let i = 0; i <= iters; i++) {
    const t = performance.now();
    const g = await forward.backward(dOut);
    await gpu.sync();
    if (i > 0) times.push(performance.now() - t);
    for (const x of [g.dq, g.dk, g.dv]) gpu.release(x);
  }
  const peak = gpu.stats().peakBytes - before;
  // Back to back: the polling delay once per batch (an upper bound on it: 11 ms / BATCH).
  const batched: number[] = [];
  for (let i = 0; i < (iters ? 3 : 0); i++) {
    const t = performance.now();
    const grads = [];
    for (let j = 0; j < BATCH; j++) grads.push(await forward.backward(dOut));
    await gpu.sync();
    batched.push((performance.now() - t) / BATCH);
    for (const g of grads) for (const x of [g.dq, g.dk, g.dv]) gpu.release(x);
  }
  // What a caller waits for, warm: plan and forward (vjp), backward, the gradients read back.
  const endToEnd: number[] = [];
  for (let i = 0; i < (iters ? 3 : 0); i++) {
    const t = performance.now();
    const f = await vjp(gpu, spec, { q, k, v });
    const g = await f.backward(dOut);
    await gpu.readMany([g.dq, g.dk, g.dv]);
    endToEnd.push(performance.now() - t);
    for (const x of [f.out, f.lse!, g.dq, g.dk, g.dv]) gpu.release(x);
  }
  for (const x of [q, k, v, dOut, forward.out, forward.lse!]) gpu.release(x);
  return {
    ms: median(batched),
    msAwaited: median(times),
    endToEndMs: median(endToEnd),
    firstForwardMs,
    firstBackwardMs,
    peak,
  };
}

function median(xs: number[]): number {
  const sorted = xs.toSorted((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

for (const isCausal of [false, true]) {
  const { peak: _, ...times } = await run(speed, isCausal, quick ? 2 : 5);
  const tflops = 2.5 * attentionFlops(speed, isCausal) / times.ms / 1e9;
  const row = { shape: shapeLabel(speed), causal: isCausal, ...times, tflops };
  log({ impl: "attend webgpu backward", ...row });
}
const ours = speedOnly ? undefined : await run(memory, true, 0);
if (ours) {
  log({
    impl: "attend webgpu forward+backward peak",
    shape: shapeLabel(memory),
    causal: true,
    bytes: ours.peak,
  });
}
log({ adapter: gpu.adapterName });
gpu.dispose();

const script = `
import json, torch
from torch.nn.attention import sdpa_kernel, SDPBackend
torch.backends.cuda.matmul.allow_tf32 = False
rows = []
def problem(b, h, n, d):
    q, k, v = (torch.randn(b, h, n, d, device="cuda", requires_grad=True) for _ in range(3))
    return q, k, v, torch.randn(b, h, n, d, device="cuda")
with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
    b, h, n, d = ${JSON.stringify([speed.batch, speed.heads, speed.n, speed.dim])}
    for causal in (False, True):
        q, k, v, g = problem(b, h, n, d)
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
        out.backward(g, retain_graph=True); torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        iters = 10
        start.record()
        for _ in range(iters): out.backward(g, retain_graph=True)
        end.record(); torch.cuda.synchronize()
        ms = start.elapsed_time(end) / iters
        flops = 2.5 * 4 * b * h * n * n * d * (0.5 if causal else 1)
        rows.append(dict(impl="torch sdpa memory-efficient backward", shape=f"B{b} H{h} N{n} D{d}", causal=causal, ms=ms, tflops=flops / ms / 1e9))
        print(json.dumps(rows[-1]), flush=True)
        del q, k, v, g, out
    b, h, n, d = ${JSON.stringify([memory.batch, memory.heads, memory.n, memory.dim])}
    torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    q, k, v, g = problem(b, h, n, d)
    torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).backward(g)
    torch.cuda.synchronize()
    rows.append(dict(impl="torch sdpa memory-efficient forward+backward peak", shape=f"B{b} H{h} N{n} D{d}", causal=True, bytes=torch.cuda.max_memory_allocated() - base))
print("ROWS" + json.dumps(rows))
`;
if (!quick && ours) {
  for (const row of await torchRows<Record<string, unknown>>(script)) log(row);
}
const torchPeak = rows.find((r) => String(r.impl).startsWith("torch") && "bytes" in r);
if (torchPeak && ours) log({ peakRatio: ours.peak / Number(torchPeak.bytes) });
await Deno.writeTextFile(outPath, JSON.stringify({ rows }, null, 2) + "\n");
