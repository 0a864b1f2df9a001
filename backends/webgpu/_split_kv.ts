/**
 * Split-KV, shared by the flash and paged encoders: a plan with `splits > 1` has each key split
 * write its partial state (`out`, `lse`) to scratch, and one merge pass combines them into the
 * run's `out` and `lse`. That keeps a long-key decode (few query rows) from running on a handful
 * of workgroups.
 * @module
 */
import type { KernelPlan } from "../../core/lower.ts";
import type { BufferPool } from "./_buffer_pool.ts";
import { type Bindings, checkBinding, dispatch, grid } from "./_dispatch.ts";
import { MERGE_THREADS } from "./kernels/merge_states_wgsl.ts";

/**
 * Refuses, before anything is compiled or allocated, a split plan whose states exceed the
 * device's storage binding.
 *
 * @throws {RangeError} Naming the run, the split count and the limit.
 */
export function checkSplitStates(device: GPUDevice, plan: KernelPlan, label: string): void {
  const { batch, heads, qLen, valueDim } = plan.sizes;
  const bytes = plan.splits > 1 ? 4 * plan.splits * batch * heads * qLen * valueDim : 0;
  checkBinding(device, label, `${plan.splits} key splits' states`, bytes);
}

/**
 * Where the kernel writes its states: pooled scratch per key split (joining `temporaries`), or,
 * for an unsplit plan, `outF32` and `lse` themselves.
 */
export function splitStates(
  pool: BufferPool,
  plan: KernelPlan,
  label: string,
  final: { readonly outF32: GPUBuffer; readonly lse: GPUBuffer },
  temporaries: GPUBuffer[],
): { partOut: GPUBuffer; partLse: GPUBuffer } {
  const splits = plan.splits;
  if (splits <= 1) return { partOut: final.outF32, partLse: final.lse };
  const { batch, heads, qLen, valueDim } = plan.sizes;
  const rows = batch * heads * qLen;
  const partOut = pool.acquire(Math.max(4, 4 * splits * rows * valueDim), `split states: ${label}`);
  const partLse = pool.acquire(Math.max(4, 4 * splits * rows), `split lse: ${label}`);
  temporaries.push(partOut, partLse);
  return { partOut, partLse };
}

/** A split plan's buffers: its key splits' states, the merged `out` and `lse`, and uniforms. */
export interface SplitBuffers {
  readonly params: GPUBuffer;
  readonly partOut: GPUBuffer;
  readonly partLse: GPUBuffer;
  readonly outF32: GPUBuffer;
  readonly lse: GPUBuffer;
  readonly lits: Bindings;
}

/** The merge pass of a split plan (flash or paged): its splits' states into `out` and `lse`. */
export function encodeMerge(
  device: GPUDevice,
  pass: GPUComputePassEncoder,
  kernels: { readonly merge?: GPUComputePipeline },
  plan: KernelPlan,
  b: SplitBuffers,
): void {
  if (!kernels.merge) return;
  const { batch, heads, qLen, valueDim } = plan.sizes;
  dispatch(
    device,
    pass,
    kernels.merge,
    {
      0: b.params,
      3: b.partLse,
      4: b.partOut,
      5: b.outF32,
      6: b.lse,
      ...(plan.sinkLogits ? b.lits : {}),
    },
    grid(Math.ceil((batch * heads * qLen * Math.max(1, valueDim)) / MERGE_THREADS)),
  );
}
