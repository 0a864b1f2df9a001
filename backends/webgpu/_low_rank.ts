/**
 * Encodes a low-rank (Linformer) run: a projection pass writes `E·K` and `F·V` to pooled
 * scratch (`B·Hkv·k·(D + Dv)` elements in the plan's dtype), then the plan's attention kernel
 * (flash, or materialized for small problems) runs on them as its keys and values. Never an
 * `Nq×Nk` buffer; the scratch goes back to the pool when the attention is submitted.
 * @module
 */
import type { KernelPlan } from "../../core/lower.ts";
import type { TensorDesc } from "../../core/tensor_desc.ts";
import { checkBinding, dispatch, grid, submitChecked, tensorBinding } from "./_dispatch.ts";
import { compiledKernels } from "./_compile.ts";
import { encodeAttention, type EncodeRequest, type EncodeResult } from "./_encode.ts";
import type { PipelineCache } from "./_pipelines.ts";
import {
  lowRankProjectionWgsl,
  PROJECTION_FIELDS,
  PROJECTION_WORKGROUP,
} from "./kernels/low_rank_wgsl.ts";

/** A low-rank run: the attention request, with the inputs' keys, values and projections. */
export interface LowRankRequest extends EncodeRequest {
  readonly inputs: EncodeRequest["inputs"] & { readonly e: GPUBuffer; readonly f: GPUBuffer };
}

/** The projection pipeline of a plan's dtype. */
function projectionPipeline(pipelines: PipelineCache, plan: KernelPlan) {
  return pipelines.get(`low-rank projection ${plan.dtype}`, lowRankProjectionWgsl(plan.dtype));
}

/**
 * Compiles what a low-rank plan runs: the projection and the attention kernels.
 * @throws {Error} If a shader fails to compile, naming it.
 */
export async function lowRankKernels(
  req: Omit<EncodeRequest, "pool" | "uniformPool" | "layout" | "inputs">,
): Promise<void> {
  await Promise.all([projectionPipeline(req.pipelines, req.plan), compiledKernels(req, req.plan)]);
}

/** The uniform block projecting `x` (`[B, Hkv, Nk, dim]`) by `m` (`[k, Nk]` or `[Hkv, k, Nk]`). */
function projectionData(plan: KernelPlan, x: TensorDesc, m: TensorDesc, dim: number): ArrayBuffer {
  const { batch, kvHeads, kvLen: rows } = plan.sizes;
  const rank = m.shape.length;
  const values: Record<string, number> = {
    total: batch * kvHeads * rows * dim,
    keys: x.shape[2],
    rows,
    dim,
    kv_heads: kvHeads,
    x_off: x.offset,
    x_sb: x.strides[0],
    x_sh: x.strides[1],
    x_sn: x.strides[2],
    x_sd: x.strides[3],
    m_off: m.offset,
    m_sh: rank === 3 ? m.strides[0] : 0,
    m_sr: m.strides[rank - 2],
    m_sj: m.strides[rank - 1],
  };
  return new Uint32Array(PROJECTION_FIELDS.map((f) => values[f] ?? 0)).buffer;
}

/**
 * Projects the keys and values, then encodes the attention on them.
 *
 * @param req The attention request; `inputs.k`/`v` are the inputs' keys and values.
 * @returns The attention's results, from the pool.
 * @throws {RangeError} If a buffer exceeds the device's binding size, naming it.
 * @throws {Error} For a shader, validation or out-of-memory error, with the run's label.
 */
export async function encodeLowRank(req: LowRankRequest): Promise<EncodeResult> {
  const { device, pool, plan, inputs } = req;
  const lr = plan.lowRank!;
  const { batch, kvHeads, kvLen: rows, headDim, valueDim } = plan.sizes;
  const label = `low-rank projection ${plan.dtype} B${batch} H${kvHeads} Nk${
    lr.k.shape[2]
  } k${rows} D${headDim}/${valueDim}`;
  const bytes = (n: number) => Math.max(16, plan.dtype === "f16" ? 2 * (n + (n & 1)) : 4 * n);
  const sides = [
    { x: lr.k, m: lr.e, xb: inputs.k, mb: inputs.e, dim: headDim, role: "k" },
    { x: lr.v, m: lr.f, xb: inputs.v, mb: inputs.f, dim: valueDim, role: "v" },
  ].map((s) => ({
    ...s,
    xBinding: tensorBinding(device, label, s.role, s.x, s.xb),
    mBinding: tensorBinding(device, label, s.role === "k" ? "e" : "f", s.m, s.mb),
    outBytes: bytes(batch * kvHeads * rows * s.dim),
  }));
  for (const s of sides) checkBinding(device, label, `projected ${s.role}`, s.outBytes);
  const pipeline = await projectionPipeline(req.pipelines, plan);
  await compiledKernels(req, plan);

  device.pushErrorScope("out-of-memory");
  device.pushErrorScope("validation");
  const encoder = device.createCommandEncoder({ label });
  const pass = encoder.beginComputePass({ label });
  const uniforms: GPUBuffer[] = [];
  const projected = sides.map((s) => {
    const out = pool.acquire(s.outBytes, `projected ${s.role}: ${label}`);
    const params = req.uniformPool.upload(projectionData(plan, s.x, s.m, s.dim));
    uniforms.push(params);
    const elements = batch * kvHeads * rows * s.dim;
    const invocations = plan.dtype === "f16" ? Math.ceil(elements / 2) : elements;
    if (invocations > 0) {
      dispatch(
        device,
        pass,
        pipeline,
        { 0: params, 1: s.xBinding, 2: s.mBinding, 3: out },
        grid(Math.ceil(invocations / PROJECTION_WORKGROUP)),
      );
    }
    return out;
  });
  const { uniformPool } = req;
  await submitChecked(device, pass, encoder, label, {
    pool,
    uniformPool,
    temporaries: [],
    uniforms,
    results: projected,
  });
  try {
    return await encodeAttention({
      ...req,
      inputs: { q: inputs.q, k: projected[0], v: projected[1] },
    });
  } finally {
    // The queue runs the attention before any later use of these buffers.
    for (const buffer of projected) pool.release(buffer);
  }
}
