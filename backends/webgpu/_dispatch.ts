/**
 * Encoding helpers: a parameter block from a plan, bind groups declared as data, and dispatch
 * grids that respect the 65535-workgroups-per-dimension limit.
 * @module
 */
import type { KernelPlan } from "../../core/lower.ts";
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
