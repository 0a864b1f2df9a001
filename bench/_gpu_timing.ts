/**
 * Timing of one attention shape on a WebGPU backend, shared by the GPU benchmarks: the first
 * run compiles and warms up, then repetitions grow until 300 ms (or 64 runs) have passed.
 * @module
 */
import {
  attention,
  causal,
  compose,
  type Expr,
  kernel,
  type KernelFamily,
  type KernelPlan,
  mask,
  type Transform,
} from "../core/mod.ts";
import type { RunInputs } from "../backends/backend.ts";
import type { WebGpuBackend } from "../backends/webgpu/mod.ts";

/** A self-attention shape (q = k = v). */
export interface BenchShape {
  readonly batch: number;
  readonly heads: number;
  readonly n: number;
  readonly dim: number;
}

/** What to time on a shape. */
export interface BenchCase {
  readonly dtype: "f32" | "f16";
  readonly causal: boolean;
  readonly family: KernelFamily;
  /** A mask to use instead of `causal()` (then `causal` is ignored). */
  readonly mask?: Expr;
  /** Transforms to apply instead of the family and mask (e.g. `hierarchical()`). */
  readonly transforms?: readonly Transform[];
}

/** `B1 H32 N4096 D128`. */
export const shapeLabel = (s: BenchShape): string => `B${s.batch} H${s.heads} N${s.n} D${s.dim}`;

/** Attention FLOPs, `4·B·H·N²·D`, halved for causal. */
export const attentionFlops = (s: BenchShape, isCausal: boolean): number =>
  4 * s.batch * s.heads * s.n * s.n * s.dim * (isCausal ? 0.5 : 1);

/** Milliseconds per run of `c` on `s`. */
export async function timeAttention(
  gpu: WebGpuBackend,
  s: BenchShape,
  c: BenchCase,
): Promise<number> {
  const data = new Float32Array(s.batch * s.heads * s.n * s.dim).map((_, i) =>
    Math.sin(i * 0.37) * 0.5
  );
  const x = gpu.tensor(data, [s.batch, s.heads, s.n, s.dim], c.dtype);
  const transforms: Transform[] = c.transforms
    ? [...c.transforms]
    : [kernel(c.family), ...(c.mask || c.causal ? [mask(c.mask ?? causal())] : [])];
  const plan = gpu.plan(compose(...transforms)(attention(x, x, x)));
  const ms = await timePlan(gpu, plan, { q: x, k: x, v: x });
  gpu.release(x);
  return ms;
}

/**
 * Milliseconds per run of a plan on given inputs: warm-up runs for `warmMs` (a GPU left idle,
 * say while the host filled a large tensor, needs most of a second to reach its clocks), then
 * batches of 1, 4, 16, 64 runs until a batch takes over 300 ms.
 */
export async function timePlan(
  gpu: WebGpuBackend,
  plan: KernelPlan,
  io: RunInputs,
  warmMs = 0,
): Promise<number> {
  const once = async () => gpu.release((await gpu.run(plan, io)).out);
  const warm = performance.now();
  do await once(); while (performance.now() - warm < warmMs);
  await gpu.sync();
  let iters = 1, elapsed = 0;
  for (;;) {
    const start = performance.now();
    for (let i = 0; i < iters; i++) await once();
    await gpu.sync();
    elapsed = performance.now() - start;
    if (elapsed > 300 || iters >= 64) break;
    iters *= 4;
  }
  return elapsed / iters;
}
