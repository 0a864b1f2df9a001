/**
 * Which encoder runs a plan, forward or backward: paged, hierarchical, linear, low-rank, or flash
 * and materialized attention; and, for a backward pass, linear or softmax. The backend checks the
 * inputs first and wraps the buffers these return as tensors of its own.
 * @module
 */
import type { KernelPlan } from "../../core/lower.ts";
import { planLayout } from "../../core/plan_layout.ts";
import type { ScoreModGradient } from "../../core/score_mod_gradient.ts";
import type { BackwardInputs, RunInputs, SoftmaxBackwardInputs } from "../backend.ts";
import type { CheckedPages } from "../_check_pages.ts";
import type { BufferPool, UniformPool } from "./_buffer_pool.ts";
import type { KernelCompiler } from "./_compile.ts";
import type { StagingPool } from "./_readback.ts";
import { encodeAttention } from "./_encode.ts";
import { encodePaged } from "./_paged.ts";
import { encodeHierarchical } from "./_hierarchical.ts";
import { encodeLinear } from "./_linear.ts";
import { encodeLowRank } from "./_low_rank.ts";
import { type BackwardBuffers, encodeBackward } from "./_backward.ts";
import { encodeLinearBackward, type LinearGradientBuffers } from "./_linear_backward.ts";

/** What every encoder reads besides the plan: the compiler and the backend's pools. */
export interface EncodeEnv extends KernelCompiler {
  readonly pool: BufferPool;
  readonly uniformPool: UniformPool;
  readonly staging: StagingPool;
}

/** A checked input's storage: its buffer. */
type Buffered = { readonly buffer: GPUBuffer };

/** A run's results as pool buffers; `state` for linear plans. */
export interface RunBuffers {
  readonly out: GPUBuffer;
  readonly lse?: GPUBuffer;
  readonly probs?: GPUBuffer;
  readonly state?: GPUBuffer;
}

/**
 * Encodes a checked run with the family's encoder.
 *
 * @param env The compiler and pools.
 * @param plan The plan.
 * @param io The run's inputs as given (views).
 * @param inputs Their checked storages.
 * @param pages The checked block tables of a paged plan.
 * @returns The results' buffers.
 */
export async function encodeRun(
  env: EncodeEnv,
  plan: KernelPlan,
  io: RunInputs,
  inputs:
    & Record<"q" | "k" | "v", Buffered>
    & Partial<Record<"gates" | "e" | "f" | "state", Buffered>>,
  pages: CheckedPages | undefined,
): Promise<RunBuffers> {
  const base = { ...env, plan };
  const qkv = { q: inputs.q.buffer, k: inputs.k.buffer, v: inputs.v.buffer };
  if (pages) return await encodePaged({ ...base, pages, inputs: qkv });
  if (plan.family === "hierarchical") {
    return {
      out: await encodeHierarchical({ ...base, inputs: { ...qkv, gates: inputs.gates?.buffer } }),
    };
  }
  if (plan.family === "linear") {
    const state = inputs.state && io.state
      ? { state: { desc: io.state, buffer: inputs.state.buffer } }
      : {};
    return await encodeLinear({ ...base, inputs: { ...qkv, ...state } });
  }
  const request = { ...base, layout: planLayout(plan), inputs: qkv };
  return plan.lowRank
    ? await encodeLowRank({
      ...request,
      inputs: { ...qkv, e: inputs.e!.buffer, f: inputs.f!.buffer },
    })
    : await encodeAttention(request);
}

/** A backward pass's gradients as pool buffers, and its per-head figures (softmax or linear). */
export type GradientBuffers = BackwardBuffers & LinearGradientBuffers;

/**
 * Encodes a checked backward pass: linear plans by their recurrences, softmax plans by
 * recomputation over the tile lists.
 *
 * @param env The compiler and pools.
 * @param plan The plan.
 * @param io The backward inputs as given (views).
 * @param storages Their checked storages (`lse` for softmax plans).
 * @param options The score modifier's derivatives, and whether the adapter is a software one.
 * @returns The gradients' buffers and per-head figures.
 */
export async function encodeGradients(
  env: EncodeEnv,
  plan: KernelPlan,
  io: BackwardInputs,
  storages: Record<"q" | "k" | "v" | "out" | "dOut", Buffered> & { readonly lse?: Buffered },
  options: { readonly gradient?: ScoreModGradient; readonly software: boolean },
): Promise<GradientBuffers> {
  const { q, k, v, out, dOut, lse } = storages;
  const buffers = { q: q.buffer, k: k.buffer, v: v.buffer, dOut: dOut.buffer };
  if (plan.family === "linear") return await encodeLinearBackward({ ...env, plan, io, buffers });
  const request = {
    ...env,
    plan,
    io: io as SoftmaxBackwardInputs,
    buffers: { ...buffers, out: out.buffer, lse: lse!.buffer },
    software: options.software,
  };
  return await encodeBackward(
    options.gradient ? { ...request, gradient: options.gradient } : request,
  );
}
