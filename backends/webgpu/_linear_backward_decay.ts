/**
 * The decay's gradient of a causal linear backward pass. `∂loss/∂γ_h` is a position-weighted sum
 * over each row's scores, `Σ_j dA_ij·A_ij·(p_i − j) / γ_h`: split at chunk starts, the part
 * inside a row's chunk comes from the intra-chunk scores and the part before it from a key-side
 * moment state (a second scan beside the forward's, which it reads), so no two large sums cancel.
 * One pass writes each row's term; they are read back and summed on the host in f64, in batch and
 * row order. Scratch (f32): the moments, shaped like the key-side chunk states, and one term per
 * query row.
 * @module
 */
import type { KernelPlan } from "../../core/lower.ts";
import { tensorDesc } from "../../core/tensor_desc.ts";
import type { Binding } from "./_dispatch.ts";
import type { DecayKernels } from "./_linear_backward_kernels.ts";
import type { LinearEncoder } from "./_linear_encoder.ts";
import { stateSizes } from "./_linear_kernels.ts";
import type { KeySide } from "./_linear_key_side.ts";
import { readBack, type StagingPool } from "./_readback.ts";
import { LINEAR_BACKWARD_BINDINGS as LB } from "./kernels/linear_backward_wgsl.ts";
import { LINEAR_BINDINGS } from "./kernels/linear_wgsl.ts";

/**
 * Encodes the key-side moments per chunk, their scan (after the forward's, whose states it
 * reads), then each row's term of `dDecay` into `buffers.terms`.
 *
 * @param enc The run being encoded.
 * @param kernels The plan's decay pipelines.
 * @param side What the key-side passes left (their scores and chunk states).
 * @param buffers v, the adjoint rows, the moments' scratch and the terms' buffer.
 * @returns `buffers.terms`, `B·Hq·Nq` f32, once the run is submitted.
 */
export function encodeDecayTerms(
  enc: LinearEncoder,
  kernels: DecayKernels,
  side: KeySide,
  buffers: { v: Binding; adjoint: GPUBuffer; moments: GPUBuffer; terms: GPUBuffer },
): GPUBuffer {
  const { batch, heads, qLen } = enc.plan.sizes;
  const { decay: db, work: wb, scores: sb, out } = LINEAR_BINDINGS;
  const { chunks, shared } = stateSizes(enc.plan);
  const { v, moments, terms } = buffers;
  enc.run(kernels.moments, shared * chunks, {
    ...side.kRows,
    3: v,
    [db]: side.decay,
    [out]: moments,
  });
  enc.run(kernels.momentScan, shared, { [db]: side.decay, [wb]: side.work, [LB.moments]: moments });
  enc.run(kernels.rowTerms, batch * heads * qLen, {
    ...side.qRows,
    3: v,
    [db]: side.decay,
    [sb]: side.scores!,
    [wb]: side.work,
    [LB.moments]: moments,
    [LB.adjoint]: buffers.adjoint,
    [LB.terms]: terms,
  });
  return terms;
}

/**
 * `∂loss/∂γ_h = Σ_i (row i's share of Σ_j dA_ij·A_ij·(p_i − j)) / γ_h`, summed in f64 in batch and
 * row order.
 *
 * @param req The device, staging pool and plan.
 * @param terms The rows' terms, as `encodeDecayTerms` wrote them (submitted).
 * @param gammas γ per query head.
 * @returns `∂loss/∂γ_h` per query head.
 */
export async function decayGradient(
  req: { readonly device: GPUDevice; readonly staging: StagingPool; readonly plan: KernelPlan },
  terms: GPUBuffer,
  gammas: readonly number[],
): Promise<number[]> {
  const { batch, heads, qLen } = req.plan.sizes;
  const target = new Float32Array(batch * heads * qLen);
  await readBack(req.device, req.staging, [{
    desc: tensorDesc([target.length]),
    buffer: terms,
    target,
  }]);
  return gammas.map((gamma, h) => {
    let sum = 0;
    for (let b = 0; b < batch; b++) {
      for (let i = 0; i < qLen; i++) sum += target[(b * heads + h) * qLen + i];
    }
    return sum / gamma;
  });
}
