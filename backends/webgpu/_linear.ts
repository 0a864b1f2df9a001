/**
 * Encodes a linear run (see `linear()` and `kernels/linear_wgsl.ts`): Performer's features pass
 * (q and k rows) when the map is Performer's, the chunk states, the scan that carries the state
 * from chunk to chunk and writes the new state, the intra-chunk scores (causal), the output rows,
 * then f16 plans pack the f32 output; one command encoder, one submit, errors raised with the
 * run's label. Temporaries: the chunk states (`B·Hq·⌈Nk/C⌉·F·(Dv+1)` f32), `C` scores per query
 * row (causal), the decays, Performer's features. Performer's matrix is uploaded once per (seed,
 * features, head dim, orthogonal) and backend, and kept until `dispose()` destroys the pool.
 * The key-side passes (`encodeKeySide`) and the encoder around them (`beginLinear`,
 * `finishLinear`) are shared with the backward pass (`_linear_backward.ts`), which needs the same
 * states and scores.
 * @module
 */
import { encodePack } from "./_encode.ts";
import { featureCount, type LinearNormalizer } from "../../core/linear.ts";
import { isCausal, stateSharers } from "../../core/_linear_lower.ts";
import type { KernelPlan } from "../../core/lower.ts";
import { performerMatrix } from "../../core/performer_matrix.ts";
import { UnsupportedSpecError } from "../../core/errors.ts";
import { literalWords } from "../../core/to_wgsl.ts";
import type { TensorDesc } from "../../core/tensor_desc.ts";
import type { BufferPool, UniformPool } from "./_buffer_pool.ts";
import {
  type Binding,
  type Bindings,
  checkBinding,
  dispatch,
  grid,
  paramsData,
  submitChecked,
  tensorBinding,
} from "./_dispatch.ts";
import type { PipelineCache } from "./_pipelines.ts";
import {
  chunkStatesWgsl,
  featureLiterals,
  LINEAR_BINDINGS,
  LINEAR_FIELDS,
  LINEAR_WORKGROUP,
  type LinearParams,
  outputWgsl,
  performerFeaturesWgsl,
  scanWgsl,
  scoresWgsl,
} from "./kernels/linear_wgsl.ts";
import { packF16Wgsl } from "./kernels/materialized_wgsl.ts";

/** The pipelines of a linear plan. */
export interface LinearKernels {
  /** Performer's features of q and k rows. */
  readonly features?: { readonly q: GPUComputePipeline; readonly k: GPUComputePipeline };
  readonly chunks: GPUComputePipeline;
  readonly scan: GPUComputePipeline;
  /** The intra-chunk scores (causal plans). */
  readonly scores?: GPUComputePipeline;
  readonly output: GPUComputePipeline;
  /** Packs the f32 output to f16 storage. */
  readonly pack?: GPUComputePipeline;
  /** The feature map's lifted literals, as uniform words (custom maps only). */
  readonly literals?: Uint32Array;
}

/** What compiling needs: the backend's device and pipeline cache. */
export interface LinearCompiler {
  readonly device: GPUDevice;
  readonly pipelines: PipelineCache;
}

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

const normalizerOf = (plan: KernelPlan) => plan.normalizer as LinearNormalizer;

/** A linear plan's compile-time kernel parameters. */
export function paramsOf(plan: KernelPlan): LinearParams {
  const map = normalizerOf(plan).featureMap;
  return {
    headDim: plan.sizes.headDim,
    valueDim: plan.sizes.valueDim,
    features: featureCount(map, plan.sizes.headDim),
    dtype: plan.dtype,
    featureMap: map,
    causal: isCausal(plan.mask),
  };
}

/** The run's label: sizes, map and form, for pipeline and error messages. */
export function runLabel(plan: KernelPlan): string {
  const s = plan.sizes;
  const n = normalizerOf(plan);
  const map = n.featureMap.kind === "performer"
    ? `performer${n.featureMap.features}`
    : n.featureMap.kind;
  return `linear ${plan.dtype} B${s.batch} H${s.heads}/${s.kvHeads} Nq${s.qLen} Nk${s.kvLen} D${s.headDim}/${s.valueDim} ${map} ${
    isCausal(plan.mask) ? `causal chunk${plan.tile.kv}` : "non-causal"
  }`;
}

async function compile(compiler: LinearCompiler, plan: KernelPlan): Promise<LinearKernels> {
  const { pipelines, device } = compiler;
  const label = runLabel(plan);
  const params = paramsOf(plan);
  const table = featureLiterals(params.featureMap);
  const literals = table.values.length > 0 ? literalWords(table) : undefined;
  if (literals && literals.byteLength > device.limits.maxUniformBufferBindingSize) {
    throw new UnsupportedSpecError(
      "webgpu",
      "normalizer.featureMap literals",
      `${literals.byteLength} bytes (the device binds at most ${device.limits.maxUniformBufferBindingSize})`,
    );
  }
  const performer = params.featureMap.kind === "performer";
  const [q, k, chunks, scan, scores, output, pack] = await Promise.all([
    performer ? pipelines.get(`features q: ${label}`, performerFeaturesWgsl(params, "q")) : null,
    performer ? pipelines.get(`features k: ${label}`, performerFeaturesWgsl(params, "k")) : null,
    pipelines.get(`chunk states: ${label}`, chunkStatesWgsl(params)),
    pipelines.get(`scan: ${label}`, scanWgsl(params)),
    params.causal ? pipelines.get(`scores: ${label}`, scoresWgsl(params)) : null,
    pipelines.get(`output: ${label}`, outputWgsl(params)),
    plan.dtype === "f16" ? pipelines.get("pack f16", packF16Wgsl()) : null,
  ]);
  return {
    ...(q && k ? { features: { q, k } } : {}),
    chunks,
    scan,
    ...(scores ? { scores } : {}),
    output,
    ...(pack ? { pack } : {}),
    ...(literals ? { literals } : {}),
  };
}

/** Per pipeline cache (one per backend), the kernels of each plan. */
const compiledOf = new WeakMap<PipelineCache, WeakMap<KernelPlan, Promise<LinearKernels>>>();

/**
 * A linear plan's pipelines, generated and looked up once per plan object and backend.
 * @throws {Error} If a shader fails to compile, naming it.
 * @throws {UnsupportedSpecError} If a custom map's literals exceed the uniform binding size.
 */
export function linearKernels(compiler: LinearCompiler, plan: KernelPlan): Promise<LinearKernels> {
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

/** Per buffer pool (one per backend), Performer matrices by seed and shape, uploaded once. */
const matricesOf = new WeakMap<BufferPool, Map<string, GPUBuffer>>();

/**
 * The device copy of a Performer matrix: uploaded on first use and then kept (never released to
 * the pool, so `dispose()` destroys it with the pool's handed-out buffers).
 */
function performerBuffer(
  device: GPUDevice,
  pool: BufferPool,
  map: { seed: number; features: number; orthogonal: boolean },
  headDim: number,
): GPUBuffer {
  let matrices = matricesOf.get(pool);
  if (!matrices) matricesOf.set(pool, matrices = new Map());
  const key = `${map.seed}:${map.features}x${headDim}:${map.orthogonal}`;
  let buffer = matrices.get(key);
  if (!buffer) {
    const w = Float32Array.from(performerMatrix(map.seed, map.features, headDim, map.orthogonal));
    buffer = pool.acquire(Math.max(16, w.byteLength), `performer matrix ${key}`);
    device.queue.writeBuffer(buffer, 0, w);
    matrices.set(key, buffer);
  }
  return buffer;
}

/** Query heads per key-side state (see `stateSharers` in core). */
export function sharersOf(plan: KernelPlan): number {
  return stateSharers(normalizerOf(plan), plan.sizes.heads, plan.sizes.kvHeads);
}

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
 * @param req The compiler, pools and plan.
 * @param label The run's label, for buffers, the pass and errors.
 * @param state The input state's view, if any (its strides go to the linear block).
 */
export function beginLinear(
  req: Omit<LinearRequest, "inputs" | "pipelines">,
  label: string,
  state?: TensorDesc,
): LinearEncoder {
  const { device, pool, plan, uniformPool } = req;
  const { batch, heads, qLen, kvLen } = plan.sizes;
  const chunks = Math.ceil(kvLen / plan.tile.kv);
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

/** Submits a linear run and checks it (see `submitChecked`); `results` are dropped on error. */
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

/** What the key-side passes leave for the passes after them. */
export interface KeySide {
  /** The bindings that give a pass `phi_q` (q rows, or Performer's q features) and literals. */
  readonly qRows: Bindings;
  /** Likewise for `phi_k`. */
  readonly kRows: Bindings;
  /** γ per query head, f32. */
  readonly decay: GPUBuffer;
  /** Each chunk's state before it, `[B, Hs, T, F, W]` f32. */
  readonly work: GPUBuffer;
  /** What stands in for the input state binding. */
  readonly stateIn: Binding;
  /** The intra-chunk scores, `C` per query row (causal plans). */
  readonly scores?: GPUBuffer;
  /** Performer's matrix `W` (Performer plans). */
  readonly matrix?: GPUBuffer;
}

/** Byte size of a features buffer of `rows` rows (never below 16). */
export const featureBytes = (rows: number, features: number): number =>
  Math.max(16, 4 * rows * features);

/**
 * Encodes the passes that depend on the keys (and queries, for scores): Performer's features,
 * the chunk states, the scan (writing the new state into `state`, `[B, Hq, F, W]` f32) and the
 * intra-chunk scores of causal plans.
 *
 * @param enc The run being encoded.
 * @param kernels The plan's forward pipelines.
 * @param inputs q, k, v and the input state, bound.
 * @param state Where the scan writes the new state.
 * @param literals The map's literal words, when it lifts any (a backward pass binds a longer
 * block: its gradient's literals follow the map's).
 */
export function encodeKeySide(
  enc: LinearEncoder,
  kernels: LinearKernels,
  inputs: { readonly q: Binding; readonly k: Binding; readonly v: Binding; stateIn?: Binding },
  state: GPUBuffer,
  literals: Uint32Array | undefined,
): KeySide {
  const { plan, run, temporary } = enc;
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  const { features, causal } = paramsOf(plan);
  const { decay: db, work: wb, literals: litb, stateIn: sb, out: ob, phiQ, phiK, matrix } =
    LINEAR_BINDINGS;
  const chunks = Math.ceil(kvLen / plan.tile.kv);
  const sharedEntries = batch * heads * features * (valueDim + 1) / Math.max(1, sharersOf(plan));
  const work = temporary(4 * sharedEntries * chunks, "chunk states");
  const decay = temporary(4 * heads, "decay");
  const gammas = normalizerOf(plan).decay;
  enc.device.queue.writeBuffer(
    decay,
    0,
    Float32Array.from({ length: heads }, (_, h) => gammas?.[h] ?? 1),
  );
  const lits: Bindings = literals ? { [litb]: enc.uniform(literals.buffer as ArrayBuffer) } : {};
  const map = normalizerOf(plan).featureMap;
  // Elementwise maps read q and k rows directly; Performer's passes read its features.
  const wm = map.kind === "performer"
    ? performerBuffer(enc.device, enc.pool, map, headDim)
    : undefined;
  const qRows: Bindings = wm
    ? { [phiQ]: temporary(featureBytes(batch * heads * qLen, features), "q features") }
    : { 1: inputs.q, ...lits };
  const kRows: Bindings = wm
    ? { [phiK]: temporary(featureBytes(batch * kvHeads * kvLen, features), "k features") }
    : { 2: inputs.k, ...lits };
  if (kernels.features && wm) {
    run(kernels.features.q, batch * heads * qLen * features, {
      1: inputs.q,
      [matrix]: wm,
      [phiQ]: qRows[phiQ],
    });
    run(kernels.features.k, batch * kvHeads * kvLen * features, {
      2: inputs.k,
      [matrix]: wm,
      [phiK]: kRows[phiK],
    });
  }
  run(kernels.chunks, sharedEntries * chunks, { ...kRows, 3: inputs.v, [db]: decay, [wb]: work });
  // Without an input state the scan never reads its binding: any small buffer stands in.
  const stateIn = inputs.stateIn ?? temporary(16, "no state");
  run(kernels.scan, sharedEntries, { [db]: decay, [wb]: work, [sb]: stateIn, [ob]: state });
  let scores: GPUBuffer | undefined;
  if (kernels.scores && causal) {
    const entries = batch * heads * qLen * plan.tile.kv;
    scores = temporary(4 * entries, "scores");
    run(kernels.scores, entries, {
      ...qRows,
      ...kRows,
      [db]: decay,
      [LINEAR_BINDINGS.scores]: scores,
    });
  }
  return {
    qRows,
    kRows,
    decay,
    work,
    stateIn,
    ...(scores ? { scores } : {}),
    ...(wm ? { matrix: wm } : {}),
  };
}

/** The key-side scratch of a plan, checked against the binding size. */
export function checkKeySide(device: GPUDevice, label: string, plan: KernelPlan): void {
  const { batch, heads, kvHeads, qLen, kvLen, valueDim } = plan.sizes;
  const { features, causal, featureMap } = paramsOf(plan);
  const chunks = Math.ceil(kvLen / plan.tile.kv);
  const stateEntries = batch * heads * features * (valueDim + 1);
  checkBinding(device, label, "chunk states", 4 * chunks * stateEntries / sharersOf(plan));
  checkBinding(device, label, "state", 4 * stateEntries);
  checkBinding(device, label, "scores", causal ? 4 * batch * heads * qLen * plan.tile.kv : 0);
  if (featureMap.kind === "performer") {
    checkBinding(device, label, "q features", featureBytes(batch * heads * qLen, features));
    checkBinding(device, label, "k features", featureBytes(batch * kvHeads * kvLen, features));
  }
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
  const { features } = paramsOf(plan);
  const label = runLabel(plan);
  const stateEntries = batch * heads * features * (valueDim + 1);
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
