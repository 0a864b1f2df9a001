/**
 * What both CPU kernels share: gathered heads, compiled Exprs and output buffers.
 * @module
 */
import { assertPlan, type KernelPlan } from "../../core/lower.ts";
import { type CompiledExpr, compileExpr, type ExprEnv } from "../../core/evaluate.ts";
import type { RunInputs } from "../backend.ts";
import { gatherHead, type HostArray, hostArray } from "./_storage.ts";

/** Per-run state of a CPU kernel. */
export interface KernelContext {
  /** The plan. */
  readonly plan: KernelPlan;
  /** Compiled mask, if any. */
  readonly mask?: CompiledExpr;
  /** Compiled score modifier, if any. */
  readonly scoreMod?: CompiledExpr;
  /** Reused variable bindings. */
  readonly env: ExprEnv;
  /** Output `[B, Hq, Nq, Dv]`. */
  readonly out: HostArray;
  /** LSE `[B, Hq, Nq]`, if wanted. */
  readonly lse?: Float32Array;
  /** Query rows of `(b, h)`, row-major. */
  queries(b: number, h: number): Float32Array;
  /** Keys and values of the KV head query head `h` reads, cached across a group. */
  keysValues(b: number, h: number): { keys: Float32Array; values: Float32Array };
}

/** Sets up a kernel run, after checking that the plan is what `lower()` makes of its spec. */
export function kernelContext(plan: KernelPlan, io: RunInputs): KernelContext {
  assertPlan(plan);
  const { batch, heads, kvHeads, qLen, kvLen, valueDim } = plan.sizes;
  const group = heads / kvHeads;
  let cached: { key: number; keys: Float32Array; values: Float32Array } | undefined;
  return {
    plan,
    mask: plan.mask && compileExpr(plan.mask),
    scoreMod: plan.scoreMod && compileExpr(plan.scoreMod),
    env: { b: 0, h: 0, qIdx: 0, kvIdx: 0, qLen, kvLen, score: 0 },
    out: hostArray(plan.dtype, batch * heads * qLen * valueDim),
    lse: plan.outputs.lse ? new Float32Array(batch * heads * qLen) : undefined,
    queries: (b, h) => gatherHead(io.q, b, h),
    keysValues(b, h) {
      const kvHead = Math.floor(h / group);
      const key = b * kvHeads + kvHead;
      if (cached?.key !== key) {
        cached = { key, keys: gatherHead(io.k, b, kvHead), values: gatherHead(io.v, b, kvHead) };
      }
      return cached;
    },
  };
}

/** Whether the mask lets query row `i` see key row `j` (of the `(b, h)` set in `ctx.env`). */
export function visible(ctx: KernelContext, i: number, j: number): boolean {
  if (!ctx.mask) return true;
  ctx.env.qIdx = i, ctx.env.kvIdx = j;
  return ctx.mask(ctx.env) !== 0;
}

/** Score of query row `i` against key row `j`, after scale and score modifier (mask aside). */
export function scoreAt(
  ctx: KernelContext,
  q: Float32Array,
  k: Float32Array,
  i: number,
  j: number,
): number {
  const dim = ctx.plan.sizes.headDim;
  const { env } = ctx;
  const qi = i * dim, kj = j * dim;
  // Four partial sums: independent chains the JIT can overlap.
  let d0 = 0, d1 = 0, d2 = 0, d3 = 0, d = 0;
  for (; d + 3 < dim; d += 4) {
    d0 += q[qi + d] * k[kj + d];
    d1 += q[qi + d + 1] * k[kj + d + 1];
    d2 += q[qi + d + 2] * k[kj + d + 2];
    d3 += q[qi + d + 3] * k[kj + d + 3];
  }
  for (; d < dim; d++) d0 += q[qi + d] * k[kj + d];
  const s = (d0 + d1 + d2 + d3) * ctx.plan.scale;
  if (!ctx.scoreMod) return s;
  env.qIdx = i, env.kvIdx = j, env.score = s;
  return ctx.scoreMod(env);
}
