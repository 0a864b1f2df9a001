/**
 * Encodes a linear run (see `linear()` and `kernels/linear_wgsl.ts`): the key-side passes
 * (`_linear_key_side.ts`: Performer's features, chunk states, scan, intra-chunk scores), then the
 * output rows, then f16 plans pack the f32 output; one command encoder, one submit, errors
 * raised with the run's label. Besides the key side's scratch, only the f32 output is a
 * temporary (f16 plans); the new state `[B, Hq, F, Dv + 1]` is a result.
 * @module
 */
import { encodePack } from "./_pack.ts";
import type { KernelPlan } from "../../core/lower.ts";
import type { TensorDesc } from "../../core/tensor_desc.ts";
import type { BufferPool, UniformPool } from "./_buffer_pool.ts";
import { checkBinding, tensorBinding } from "./_dispatch.ts";
import { beginLinear, finishLinear } from "./_linear_encoder.ts";
import { type LinearCompiler, linearKernels, runLabel, stateSizes } from "./_linear_kernels.ts";
import { checkKeySide, encodeKeySide } from "./_linear_key_side.ts";
import { LINEAR_BINDINGS } from "./kernels/linear_wgsl.ts";

/** What a run needs: the compiler, the pools, the plan, the inputs and the state, if any. */
export interface LinearRequest extends LinearCompiler {
  readonly pool: BufferPool;
  readonly uniformPool: UniformPool;
  readonly plan: KernelPlan;
  readonly inputs: {
    readonly q: GPUBuffer;
    readonly k: GPUBuffer;
    readonly v: GPUBuffer;
    /** The state tensor's descriptor and buffer. */
    readonly state?: { readonly desc: TensorDesc; readonly buffer: GPUBuffer };
  };
}

/** The output and the new state `[B, Hq, F, Dv + 1]` f32, both from the pool. */
export interface LinearResult {
  readonly out: GPUBuffer;
  readonly state: GPUBuffer;
}

/**
 * Encodes, submits and checks one linear run.
 *
 * @param req The compiler, pools, plan, inputs and state.
 * @returns The output `[B, Hq, Nq, Dv]` in the plan's dtype and the new state, from the pool.
 * @throws {RangeError} If a buffer exceeds the device's binding size, naming it.
 * @throws {Error} For a shader, validation or out-of-memory error, with the run's label.
 */
export async function encodeLinear(req: LinearRequest): Promise<LinearResult> {
  const { device, pool, plan, inputs } = req;
  const { batch, heads, qLen, valueDim } = plan.sizes;
  const label = runLabel(plan);
  const stateEntries = stateSizes(plan).state;
  const elements = batch * heads * qLen * valueDim;
  const q = tensorBinding(device, label, "q", plan.q, inputs.q);
  const k = tensorBinding(device, label, "k", plan.k, inputs.k);
  const v = tensorBinding(device, label, "v", plan.v, inputs.v);
  const stateIn = inputs.state &&
    tensorBinding(device, label, "state", inputs.state.desc, inputs.state.buffer);
  checkBinding(device, label, "out", 4 * elements);
  checkKeySide(device, label, plan);
  // Compile after the size checks and before allocating: neither a size that cannot run nor a
  // shader error costs a compilation or touches the pool.
  const kernels = await linearKernels(req, plan);

  const enc = beginLinear(req, label, inputs.state?.desc);
  const outF32 = pool.acquire(Math.max(16, 4 * elements), `out: ${label}`);
  const state = pool.acquire(Math.max(16, 4 * stateEntries), `state: ${label}`);
  const side = encodeKeySide(
    enc,
    kernels,
    { q, k, v, ...(stateIn ? { stateIn } : {}) },
    state,
    kernels.literals,
  );
  const { decay: db, work: wb, stateIn: sb, out: ob } = LINEAR_BINDINGS;
  if (side.scores) {
    enc.run(kernels.output, elements, {
      ...side.qRows,
      3: v,
      [db]: side.decay,
      [wb]: side.work,
      [sb]: side.stateIn,
      [LINEAR_BINDINGS.scores]: side.scores,
      [ob]: outF32,
    });
  } else {
    enc.run(kernels.output, elements, { ...side.qRows, [wb]: state, [ob]: outF32 });
  }
  const out = encodePack(req, enc.pass, kernels, outF32, elements, enc);
  await finishLinear(enc, [out, state]);
  return { out, state };
}
