/**
 * Encoding helpers: a parameter block from a plan, bind groups declared as data, and dispatch
 * grids that respect the 65535-workgroups-per-dimension limit.
 * @module
 */
import type { KernelPlan } from "../../core/lower.ts";
import { extent, type TensorDesc } from "../../core/tensor_desc.ts";
import type { BufferPool, UniformPool } from "./_buffer_pool.ts";
import { PARAM_FIELDS } from "./kernels/_common_wgsl.ts";

/** Values of the uniform block for a plan (`rows`/`cols` and `head_base` set per dispatch). */
export function paramsData(
  plan: KernelPlan,
  extra: { rows: number; cols: number; headBase: number },
): ArrayBuffer {
  const { sizes } = plan;
  const values: Record<string, number> = {
    q_len: sizes.qLen,
    kv_len: sizes.kvLen,
    heads: sizes.heads,
    group: sizes.heads / sizes.kvHeads,
    rows: extra.rows,
    cols: extra.cols,
    head_base: extra.headBase,
    scale: plan.scale,
    head_dim: sizes.headDim,
    value_dim: sizes.valueDim,
    pack: plan.pack,
    // Each key split writes its rows' states `split_stride` rows after the previous split's.
    splits: plan.splits,
    split_stride: sizes.batch * sizes.heads * sizes.qLen,
  };
  for (const role of ["q", "k", "v"] as const) {
    const d = plan[role];
    values[`${role}_off`] = d.offset;
    ["sb", "sh", "sn", "sd"].forEach((name, i) => values[`${role}_${name}`] = d.strides[i]);
  }
  const buffer = new ArrayBuffer(PARAM_FIELDS.length * 4);
  const u32 = new Uint32Array(buffer), f32 = new Float32Array(buffer);
  PARAM_FIELDS.forEach((field, i) =>
    field === "scale" ? f32[i] = values[field] : u32[i] = values[field]
  );
  return buffer;
}

/** Splits a workgroup count over x and y when it exceeds 65535. */
export function grid(count: number): [number, number] {
  return count <= 65535 ? [count, 1] : [65535, Math.ceil(count / 65535)];
}

/** A buffer bound whole, or its first `size` bytes. */
export type Binding = GPUBuffer | { readonly buffer: GPUBuffer; readonly size: number };

/** Resources of one dispatch: binding number to buffer. */
export type Bindings = Readonly<Record<number, Binding>>;

/** Records one compute dispatch into a pass. */
export function dispatch(
  device: GPUDevice,
  pass: GPUComputePassEncoder,
  pipeline: GPUComputePipeline,
  bindings: Bindings,
  workgroups: readonly [number, number?, number?],
): void {
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: Object.entries(bindings).map(([binding, resource]) => ({
      binding: Number(binding),
      resource: resource instanceof GPUBuffer ? { buffer: resource } : resource,
    })),
  });
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1);
}

/** Fails with the run's label when `bytes` exceed the device's storage binding size. */
export function checkBinding(device: GPUDevice, label: string, role: string, bytes: number): void {
  const limit = device.limits.maxStorageBufferBindingSize;
  if (bytes > limit) {
    throw new RangeError(
      `Cannot run ${label}: ${role} needs ${bytes} bytes, over the device's maxStorageBufferBindingSize ${limit}`,
    );
  }
}

/**
 * A tensor bound over the bytes its descriptor addresses, rounded up to whole vec4s (pool buckets
 * may be larger than a binding may be), after `checkBinding`.
 */
export function tensorBinding(
  device: GPUDevice,
  label: string,
  role: string,
  desc: TensorDesc,
  buffer: GPUBuffer,
): Binding {
  const bytes = Math.ceil((extent(desc) * (desc.dtype === "f16" ? 2 : 4)) / 16) * 16;
  checkBinding(device, label, role, bytes);
  return { buffer, size: Math.min(buffer.size, Math.max(16, bytes)) };
}

/** What a run hands back after its pass: scratch to release, and results to drop on failure. */
export interface Submission {
  readonly pool: BufferPool;
  readonly uniformPool: UniformPool;
  readonly temporaries: readonly GPUBuffer[];
  readonly uniforms: readonly GPUBuffer[];
  readonly results: readonly GPUBuffer[];
}

/**
 * Ends the pass, submits the encoder, releases the run's scratch, then pops the validation and
 * out-of-memory scopes the run pushed; on an error releases its results too and throws it with
 * the run's label.
 */
export async function submitChecked(
  device: GPUDevice,
  pass: GPUComputePassEncoder,
  encoder: GPUCommandEncoder,
  label: string,
  run: Submission,
): Promise<void> {
  pass.end();
  device.queue.submit([encoder.finish()]);
  for (const buffer of run.temporaries) run.pool.release(buffer);
  run.uniformPool.release(run.uniforms);
  const validation = await device.popErrorScope();
  const memory = await device.popErrorScope();
  const error = validation ?? memory;
  if (error) {
    for (const buffer of run.results) run.pool.release(buffer);
    throw new Error(`Cannot run ${label}: ${error.message}`);
  }
}
