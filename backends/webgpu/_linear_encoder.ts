/**
 * The frame around a linear run's passes, forward or backward: error scopes, one command encoder
 * and one compute pass, the parameter block and a linear block per dispatch (chunk size and
 * count, normalization, sharing heads, the input state's view), scratch from the pools, and the
 * checked submit that hands it all back. The forward (`_linear.ts`) and backward
 * (`_linear_backward.ts`) encoders differ only in the passes they put inside it.
 * @module
 */
import type { KernelPlan } from "../../core/lower.ts";
import type { TensorDesc } from "../../core/tensor_desc.ts";
import type { BufferPool, UniformPool } from "./_buffer_pool.ts";
import { type Bindings, dispatch, grid, paramsData, submitChecked } from "./_dispatch.ts";
import { normalizerOf, sharersOf, stateSizes } from "./_linear_kernels.ts";
import { LINEAR_BINDINGS, LINEAR_FIELDS, LINEAR_WORKGROUP } from "./kernels/linear_wgsl.ts";

/** The linear uniform block for a dispatch of `total` invocations. */
function linearData(
  plan: KernelPlan,
  chunks: number,
  total: number,
  state: TensorDesc | undefined,
): ArrayBuffer {
  const n = normalizerOf(plan);
  const values: Record<string, number> = {
    chunk: plan.tile.kv,
    chunks,
    total,
    normalize: n.normalize ? 1 : 0,
    has_state: state ? 1 : 0,
    sharers: sharersOf(plan),
  };
  if (state) {
    values.s_off = state.offset;
    ["s_sb", "s_sh", "s_sf", "s_sc"].forEach((name, i) => values[name] = state.strides[i]);
  }
  const buffer = new ArrayBuffer(LINEAR_FIELDS.length * 4);
  const u32 = new Uint32Array(buffer), f32 = new Float32Array(buffer);
  LINEAR_FIELDS.forEach((field, i) =>
    field === "epsilon" ? f32[i] = n.epsilon : u32[i] = values[field] ?? 0
  );
  return buffer;
}

/** A linear run being encoded: its pass, scratch and uniforms, and the dispatch helper. */
export interface LinearEncoder {
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  readonly uniformPool: UniformPool;
  readonly plan: KernelPlan;
  readonly label: string;
  readonly encoder: GPUCommandEncoder;
  readonly pass: GPUComputePassEncoder;
  /** Scratch released after the submit. */
  readonly temporaries: GPUBuffer[];
  readonly uniforms: GPUBuffer[];
  /** Uploads a uniform block, released after the submit. */
  uniform(data: ArrayBuffer): GPUBuffer;
  /** A scratch buffer from the pool (at least 16 bytes), released after the submit. */
  temporary(bytes: number, role: string): GPUBuffer;
  /**
   * Dispatches `total` invocations (none when 0) with the parameter and linear blocks bound;
   * `chunks` overrides the plan's chunk count in the linear block.
   */
  run(pipeline: GPUComputePipeline, total: number, bindings: Bindings, chunks?: number): void;
}

/**
 * Opens a linear run's error scopes, command encoder and compute pass.
 *
 * @param req The device, pools and plan.
 * @param label The run's label, for buffers, the pass and errors.
 * @param state The input state's view, if any (its strides go to the linear block).
 * @returns The run being encoded; `finishLinear` submits it.
 */
export function beginLinear(
  req: {
    readonly device: GPUDevice;
    readonly pool: BufferPool;
    readonly uniformPool: UniformPool;
    readonly plan: KernelPlan;
  },
  label: string,
  state?: TensorDesc,
): LinearEncoder {
  const { device, pool, plan, uniformPool } = req;
  const { batch, heads, qLen, kvLen } = plan.sizes;
  const { chunks } = stateSizes(plan);
  device.pushErrorScope("out-of-memory");
  device.pushErrorScope("validation");
  const uniforms: GPUBuffer[] = [], temporaries: GPUBuffer[] = [];
  const uniform = (data: ArrayBuffer) => {
    const buffer = uniformPool.upload(data);
    uniforms.push(buffer);
    return buffer;
  };
  const temporary = (bytes: number, role: string) => {
    const buffer = pool.acquire(Math.max(16, bytes), `${role}: ${label}`);
    temporaries.push(buffer);
    return buffer;
  };
  const params = uniform(
    paramsData(plan, { rows: batch * heads * qLen, cols: kvLen, headBase: 0 }),
  );
  const encoder = device.createCommandEncoder({ label });
  const pass = encoder.beginComputePass({ label });
  return {
    device,
    pool,
    uniformPool,
    plan,
    label,
    encoder,
    pass,
    temporaries,
    uniforms,
    uniform,
    temporary,
    run(pipeline, total, bindings, count = chunks) {
      if (total === 0) return;
      const all = {
        0: params,
        [LINEAR_BINDINGS.linear]: uniform(linearData(plan, count, total, state)),
        ...bindings,
      };
      dispatch(device, pass, pipeline, all, grid(Math.ceil(total / LINEAR_WORKGROUP)));
    },
  };
}

/**
 * Submits a linear run and checks it (see `submitChecked`); `results` are dropped on error.
 * @throws {Error} For a validation or out-of-memory error, with the run's label.
 */
export function finishLinear(enc: LinearEncoder, results: readonly GPUBuffer[]): Promise<void> {
  const { device, pass, encoder, label, pool, uniformPool, temporaries, uniforms } = enc;
  return submitChecked(device, pass, encoder, label, {
    pool,
    uniformPool,
    temporaries,
    uniforms,
    results,
  });
}
