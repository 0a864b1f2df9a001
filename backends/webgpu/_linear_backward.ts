/**
 * Encodes the backward pass of a linear plan (see `kernels/linear_backward_wgsl.ts`): the
 * forward's key-side passes (shared with `encodeLinear`), then the adjoint, weights, `dφ(q)`,
 * query-state, reverse-scan, `dφ(k)`, dv, key-term and pullback passes, and f16 packing; one
 * command encoder, one submit, errors raised with the run's label. The decay's gradient is a
 * difference of two position-weighted sums of per-row and per-key terms: they are read back and
 * summed on the host in f64, in batch, row and key order. Scratch (f32): the key-side states
 * (`B·Hs·⌈Nk/C⌉·F·W`) and the query-side states (`B·Hq·⌈N/C⌉·F·W`), the final states, `C` scores
 * and `C` weights, `W` adjoint entries and `F` of `dφ(q)` per query row, `F` of `dφ(k)` per key
 * row, the f32 gradients; no `Nq × Nk` buffer.
 * @module
 */
import { encodePack } from "./_encode.ts";
import type { LinearNormalizer } from "../../core/linear.ts";
import type { KernelPlan } from "../../core/lower.ts";
import { featureMapGradient } from "../../core/score_mod_gradient.ts";
import { literalWords } from "../../core/to_wgsl.ts";
import { tensorDesc } from "../../core/tensor_desc.ts";
import { UnsupportedSpecError } from "../../core/errors.ts";
import type { BackwardInputs } from "../backend.ts";
import { type Binding, type Bindings, checkBinding, tensorBinding } from "./_dispatch.ts";
import {
  beginLinear,
  checkKeySide,
  encodeKeySide,
  finishLinear,
  type KeySide,
  type LinearCompiler,
  type LinearEncoder,
  linearKernels,
  type LinearRequest,
  paramsOf,
  runLabel,
  sharersOf,
} from "./_linear.ts";
import type { PipelineCache } from "./_pipelines.ts";
import { readBack, type StagingPool } from "./_readback.ts";
import { featureLiterals, LINEAR_BINDINGS, type LinearParams } from "./kernels/linear_wgsl.ts";
import {
  adjointWgsl,
  dPhiKWgsl,
  dPhiQWgsl,
  dValueWgsl,
  GRAD_FIELDS,
  LINEAR_BACKWARD_BINDINGS as LB,
  momentChunksWgsl,
  momentScanWgsl,
  pullbackWgsl,
  queryStatesWgsl,
  reverseScanWgsl,
  rowTermsWgsl,
  weightsWgsl,
} from "./kernels/linear_backward_wgsl.ts";
import { packF16Wgsl } from "./kernels/materialized_wgsl.ts";

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

/** The backward pipelines of a linear plan. */
interface BackwardKernels {
  readonly adjoint: GPUComputePipeline;
  readonly weights?: GPUComputePipeline;
  readonly dPhiQ: GPUComputePipeline;
  readonly queryStates: GPUComputePipeline;
  readonly reverseScan: GPUComputePipeline;
  readonly dPhiK: GPUComputePipeline;
  readonly dValue: GPUComputePipeline;
  /** With a decay: the key-side moments, their scan, the rows' terms of `dDecay`. */
  readonly decay?: {
    readonly moments: GPUComputePipeline;
    readonly momentScan: GPUComputePipeline;
    readonly rowTerms: GPUComputePipeline;
  };
  readonly pullback: { readonly q: GPUComputePipeline; readonly k: GPUComputePipeline };
  readonly pack?: GPUComputePipeline;
  /** The map's and its derivative's lifted literals (custom maps only). */
  readonly literals?: Uint32Array;
}

const normalizerOf = (plan: KernelPlan) => plan.normalizer as LinearNormalizer;

async function compile(compiler: LinearCompiler, plan: KernelPlan): Promise<BackwardKernels> {
  const { pipelines, device } = compiler;
  const label = `backward ${runLabel(plan)}`;
  const base = paramsOf(plan);
  const map = base.featureMap;
  const gradient = map.kind === "performer" ? undefined : featureMapGradient(map, "webgpu");
  const params: LinearParams = gradient ? { ...base, featureGradient: gradient } : base;
  const table = featureLiterals(map, gradient);
  const literals = table.values.length > 0 ? literalWords(table) : undefined;
  if (literals && literals.byteLength > device.limits.maxUniformBufferBindingSize) {
    throw new UnsupportedSpecError(
      "webgpu",
      "normalizer.featureMap literals",
      `${literals.byteLength} bytes (the device binds at most ${device.limits.maxUniformBufferBindingSize})`,
    );
  }
  const get = (name: string, source: string) => pipelines.get(`${name}: ${label}`, source);
  const decay = base.causal && normalizerOf(plan).decay !== undefined;
  const [adjoint, weights, dPhiQ, queryStates, reverseScan, dPhiK, dValue, pq, pk, pack] =
    await Promise.all([
      get("adjoint", adjointWgsl(params)),
      base.causal ? get("weights", weightsWgsl(params)) : null,
      get("dphi q", dPhiQWgsl(params)),
      get("query states", queryStatesWgsl(params)),
      get("reverse scan", reverseScanWgsl(params)),
      get("dphi k", dPhiKWgsl(params)),
      get("dv", dValueWgsl(params)),
      get("pullback q", pullbackWgsl(params, "q")),
      get("pullback k", pullbackWgsl(params, "k")),
      plan.dtype === "f16" ? pipelines.get("pack f16", packF16Wgsl()) : null,
    ]);
  const terms = decay
    ? await Promise.all([
      get("moments", momentChunksWgsl(params)),
      get("moment scan", momentScanWgsl(params)),
      get("row terms", rowTermsWgsl(params)),
    ])
    : undefined;
  return {
    adjoint,
    ...(weights ? { weights } : {}),
    dPhiQ,
    queryStates,
    reverseScan,
    dPhiK,
    dValue,
    ...(terms ? { decay: { moments: terms[0], momentScan: terms[1], rowTerms: terms[2] } } : {}),
    pullback: { q: pq, k: pk },
    ...(pack ? { pack } : {}),
    ...(literals ? { literals } : {}),
  };
}

/** Per pipeline cache (one per backend), the backward kernels of each plan. */
const compiledOf = new WeakMap<PipelineCache, WeakMap<KernelPlan, Promise<BackwardKernels>>>();

/** A linear plan's backward pipelines, generated once per plan object and backend. */
function backwardKernels(compiler: LinearCompiler, plan: KernelPlan): Promise<BackwardKernels> {
  let plans = compiledOf.get(compiler.pipelines);
  if (!plans) compiledOf.set(compiler.pipelines, plans = new WeakMap());
  let kernels = plans.get(plan);
  if (!kernels) {
    kernels = compile(compiler, plan);
    kernels.catch(() => plans.delete(plan));
    plans.set(plan, kernels);
  }
  return kernels;
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
  const chunk = plan.tile.kv, W = valueDim + 1, sharers = sharersOf(plan);
  // Causal query-side chunks follow the key chunks (by position); non-causal, chunks of rows.
  const queryChunks = Math.ceil((causal ? kvLen : qLen) / chunk);
  const rows = batch * heads * qLen, keys = batch * kvHeads * kvLen;
  return {
    queryChunks,
    entries: {
      state: batch * heads * features * W,
      adjoint: rows * W,
      weights: causal ? rows * chunk : 0,
      "dphi q": rows * features,
      "query states": batch * heads * queryChunks * features * W,
      "dphi k": keys * features,
      "row terms": rows,
      moments: batch * heads * Math.ceil(kvLen / chunk) * features * W / sharers,
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
  const kernels = await backwardKernels(req, plan);

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

/**
 * With a decay: the key-side moments per chunk, their scan (after the forward's, whose states
 * it reads), then each row's term of `dDecay` into `buffers.terms`.
 */
function encodeDecayTerms(
  enc: LinearEncoder,
  kernels: NonNullable<BackwardKernels["decay"]>,
  side: KeySide,
  buffers: { v: Binding; adjoint: GPUBuffer; moments: GPUBuffer; terms: GPUBuffer },
): GPUBuffer {
  const { batch, heads, qLen, kvLen, valueDim } = enc.plan.sizes;
  const { features } = paramsOf(enc.plan);
  const { decay: db, work: wb, scores: sb, out } = LINEAR_BINDINGS;
  const shared = batch * heads * features * (valueDim + 1) / sharersOf(enc.plan);
  const chunks = Math.ceil(kvLen / enc.plan.tile.kv);
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
 */
async function decayGradient(
  req: LinearBackwardRequest,
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
