/**
 * Encodes the backward pass of a linear plan (see `kernels/linear_backward_wgsl.ts`): the
 * forward's key-side passes (`encodeKeySide`, shared with `encodeLinear`), then the adjoint,
 * weights, `dφ(q)`, query-state, reverse-scan, `dφ(k)`, dv and pullback passes, the decay's terms
 * (`_linear_backward_decay.ts`), and f16 packing; one command encoder, one submit, errors raised
 * with the run's label. Scratch (f32): the key-side states (`B·Hs·⌈Nk/C⌉·F·W`) and the query-side
 * states (`B·Hq·⌈N/C⌉·F·W`), the final states, `C` scores and `C` weights, `W` adjoint entries
 * and `F` of `dφ(q)` per query row, `F` of `dφ(k)` per key row, the f32 gradients; no `Nq × Nk`
 * buffer.
 * @module
 */
import { encodePack } from "./_pack.ts";
import type { KernelPlan } from "../../core/lower.ts";
import type { BackwardInputs } from "../backend.ts";
import { type Binding, type Bindings, checkBinding, tensorBinding } from "./_dispatch.ts";
import type { LinearRequest } from "./_linear.ts";
import { decayGradient, encodeDecayTerms } from "./_linear_backward_decay.ts";
import { linearBackwardKernels } from "./_linear_backward_kernels.ts";
import { beginLinear, finishLinear, type LinearEncoder } from "./_linear_encoder.ts";
import { linearKernels, normalizerOf, paramsOf, runLabel, stateSizes } from "./_linear_kernels.ts";
import { checkKeySide, encodeKeySide, type KeySide } from "./_linear_key_side.ts";
import type { StagingPool } from "./_readback.ts";
import { LINEAR_BINDINGS } from "./kernels/linear_wgsl.ts";
import { GRAD_FIELDS, LINEAR_BACKWARD_BINDINGS as LB } from "./kernels/linear_backward_wgsl.ts";

/** What a linear backward pass needs: the compiler, pools, plan, the inputs' views and buffers. */
export interface LinearBackwardRequest extends Omit<LinearRequest, "inputs"> {
  readonly staging: StagingPool;
  readonly io: BackwardInputs;
  readonly buffers: Readonly<Record<"q" | "k" | "v" | "dOut", GPUBuffer>>;
}

/** The gradients' buffers (from the pool, owned by the caller) and the decay's gradient. */
export interface LinearGradientBuffers {
  readonly dq: GPUBuffer;
  readonly dk: GPUBuffer;
  readonly dv: GPUBuffer;
  readonly dDecay?: number[];
}

/** The gradient's view block: `dOut`'s offset and strides. */
function gradView(io: BackwardInputs): ArrayBuffer {
  const d = io.dOut;
  const values = [d.offset, ...d.strides];
  return new Uint32Array(GRAD_FIELDS.map((_, i) => values[i] ?? 0)).buffer;
}

/** Sizes of the scratch a backward pass allocates (elements), by role. */
function scratchSizes(plan: KernelPlan) {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  const { features, causal } = paramsOf(plan);
  const { chunks, state, shared } = stateSizes(plan);
  const chunk = plan.tile.kv, W = valueDim + 1;
  // Causal query-side chunks follow the key chunks (by position); non-causal, chunks of rows.
  const queryChunks = Math.ceil((causal ? kvLen : qLen) / chunk);
  const rows = batch * heads * qLen, keys = batch * kvHeads * kvLen;
  return {
    queryChunks,
    entries: {
      state,
      adjoint: rows * W,
      weights: causal ? rows * chunk : 0,
      "dphi q": rows * features,
      "query states": batch * heads * queryChunks * features * W,
      "dphi k": keys * features,
      "row terms": rows,
      moments: chunks * shared,
      dq: rows * headDim,
      dk: keys * headDim,
      dv: keys * valueDim,
    },
  };
}

/**
 * Encodes, submits and checks a linear plan's backward pass; reads back the decay's terms.
 *
 * @param req The compiler, pools, plan, inputs' views and buffers.
 * @returns dq, dk, dv (the plan's dtype, contiguous, from the pool) and `dDecay` with a decay.
 * @throws {RangeError} If a buffer exceeds the device's binding size, naming it.
 * @throws {UnsupportedSpecError} For a custom map with an op that has no derivative.
 * @throws {Error} For a shader, validation or out-of-memory error, with the run's label.
 */
export async function encodeLinearBackward(
  req: LinearBackwardRequest,
): Promise<LinearGradientBuffers> {
  const { device, pool, plan, io, buffers } = req;
  const { batch, heads, qLen } = plan.sizes;
  const { causal } = paramsOf(plan);
  const label = `backward ${runLabel(plan)}`;
  const gammas = normalizerOf(plan).decay;
  const q = tensorBinding(device, label, "q", plan.q, buffers.q);
  const k = tensorBinding(device, label, "k", plan.k, buffers.k);
  const v = tensorBinding(device, label, "v", plan.v, buffers.v);
  const dOut = tensorBinding(device, label, "dOut", io.dOut, buffers.dOut);
  checkKeySide(device, label, plan);
  const { queryChunks, entries } = scratchSizes(plan);
  for (const [role, n] of Object.entries(entries)) checkBinding(device, label, role, 4 * n);
  const forward = await linearKernels(req, plan);
  const kernels = await linearBackwardKernels(req, plan);

  const enc = beginLinear(req, label);
  const { run, temporary } = enc;
  const kept: GPUBuffer[] = [];
  const result = (n: number, role: string) => {
    const buffer = pool.acquire(Math.max(16, 4 * n), `${role}: ${label}`);
    kept.push(buffer);
    return buffer;
  };
  const scratch = (role: keyof typeof entries) => temporary(4 * entries[role], role);
  const finalState = scratch("state");
  const side = encodeKeySide(enc, forward, { q, k, v }, finalState, kernels.literals);
  const { decay: db, work: wb, scores: sb, out: ob } = LINEAR_BINDINGS;
  const { qRows, kRows, decay } = side;
  // Causal passes read the key-side state before each chunk; non-causal ones the final state.
  const keyStates: Bindings = { [wb]: causal ? side.work : finalState };
  const decays: Bindings = causal ? { [db]: decay } : {};
  const scores: Bindings = side.scores ? { [sb]: side.scores } : {};
  const adjoint = scratch("adjoint");
  run(kernels.adjoint, batch * heads * qLen, {
    ...qRows,
    ...(causal ? { 3: v } as Bindings : {}),
    ...decays,
    ...scores,
    ...keyStates,
    [LB.grad]: dOut,
    [LB.gradView]: enc.uniform(gradView(io)),
    [LB.adjoint]: adjoint,
  });
  // The intra-chunk weights and what reads them (causal plans).
  let intra: Bindings = {};
  if (kernels.weights) {
    const weights = scratch("weights");
    run(kernels.weights, entries.weights, {
      3: v,
      ...decays,
      [LB.adjoint]: adjoint,
      [ob]: weights,
    });
    intra = { [LB.weights]: weights };
  }
  const dPhiQ = scratch("dphi q");
  run(kernels.dPhiQ, entries["dphi q"], {
    ...(causal ? { ...kRows, ...decays, ...intra } : {}),
    ...keyStates,
    [LB.adjoint]: adjoint,
    [ob]: dPhiQ,
  });
  const queryStates = scratch("query states");
  run(kernels.queryStates, entries["query states"], {
    ...qRows,
    ...decays,
    [LB.adjoint]: adjoint,
    [ob]: queryStates,
  }, queryChunks);
  // Key passes read the query-side state after each chunk, or (non-causal) the total.
  const rs: Bindings = causal
    ? { ...decays, [LB.queryStates]: queryStates }
    : { [LB.queryTotal]: scratch("state") };
  run(kernels.reverseScan, entries.state, { ...rs, [LB.queryStates]: queryStates }, queryChunks);
  const dPhiK = scratch("dphi k");
  run(kernels.dPhiK, entries["dphi k"], {
    ...(causal ? qRows : {}),
    3: v,
    ...rs,
    ...intra,
    [ob]: dPhiK,
  });
  const f16 = plan.dtype === "f16";
  const gradient = (role: "dq" | "dk" | "dv") => f16 ? scratch(role) : result(entries[role], role);
  const dv = gradient("dv");
  run(kernels.dValue, entries.dv, {
    ...kRows,
    ...rs,
    ...(causal ? { ...scores, [LB.adjoint]: adjoint } as Bindings : {}),
    [ob]: dv,
  });
  const dq = gradient("dq"), dk = gradient("dk");
  encodePullback(
    enc,
    kernels.pullback.q,
    side,
    { role: "q", x: q, dPhi: dPhiQ, out: dq },
    entries.dq,
  );
  encodePullback(
    enc,
    kernels.pullback.k,
    side,
    { role: "k", x: k, dPhi: dPhiK, out: dk },
    entries.dk,
  );
  const pack = (x: GPUBuffer, n: number) => {
    const packed = encodePack(req, enc.pass, kernels, x, n, enc);
    if (packed !== x) kept.push(packed);
    return packed;
  };
  const grads = { dq: pack(dq, entries.dq), dk: pack(dk, entries.dk), dv: pack(dv, entries.dv) };
  const terms = kernels.decay &&
    encodeDecayTerms(enc, kernels.decay, side, {
      v,
      adjoint,
      moments: scratch("moments"),
      terms: result(entries["row terms"], "row terms"),
    });
  await finishLinear(enc, kept);
  if (!terms || !gammas) return grads;
  try {
    return { ...grads, dDecay: await decayGradient(req, terms, gammas) };
  } catch (e) {
    for (const buffer of [grads.dq, grads.dk, grads.dv]) pool.release(buffer);
    throw e;
  } finally {
    pool.release(terms);
  }
}

/** The pullback pass of q or k rows: `dφ` to `∂loss/∂x` (f32, contiguous) in `out`. */
function encodePullback(
  enc: LinearEncoder,
  pipeline: GPUComputePipeline,
  side: KeySide,
  io: { role: "q" | "k"; x: Binding; dPhi: GPUBuffer; out: GPUBuffer },
  total: number,
): void {
  const { phiQ, phiK, matrix, out } = LINEAR_BINDINGS;
  const rows = io.role === "q" ? side.qRows : side.kRows;
  // Performer's pass reads the rows and their features; elementwise maps read the rows only.
  const source: Bindings = side.matrix
    ? {
      [io.role === "q" ? 1 : 2]: io.x,
      [matrix]: side.matrix,
      ...(io.role === "q" ? { [phiQ]: rows[phiQ] } : { [phiK]: rows[phiK] }),
    }
    : rows;
  enc.run(pipeline, total, { ...source, [LB.dphi]: io.dPhi, [out]: io.out });
}
