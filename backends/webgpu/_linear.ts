/**
 * Encodes a linear run (see `linear()` and `kernels/linear_wgsl.ts`): Performer's features pass
 * (q and k rows) when the map is Performer's, the chunk states, the scan that carries the state
 * from chunk to chunk and writes the new state, the intra-chunk scores (causal), the output rows,
 * then f16 plans pack the f32 output; one command encoder, one submit, errors raised with the
 * run's label. Temporaries: the chunk states (`B·Hq·⌈Nk/C⌉·F·(Dv+1)` f32), `C` scores per query row (causal), the decays,
 * Performer's features. Performer's matrix is uploaded once per (seed, features, head dim,
 * orthogonal) and backend, and kept until `dispose()` destroys the pool.
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

function paramsOf(plan: KernelPlan): LinearParams {
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
function runLabel(plan: KernelPlan): string {
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
function sharersOf(plan: KernelPlan): number {
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
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  const params = paramsOf(plan);
  const { features, causal } = params;
  const label = runLabel(plan);
  const chunk = plan.tile.kv;
  const chunks = Math.ceil(kvLen / chunk);
  const stateEntries = batch * heads * features * (valueDim + 1);
  // One key-side state per `sharers` query heads (GQA with equal decays: per KV head).
  const sharedEntries = stateEntries / Math.max(1, sharersOf(plan));
  const workEntries = sharedEntries * chunks;
  const elements = batch * heads * qLen * valueDim;
  const scoreEntries = causal ? batch * heads * qLen * chunk : 0;
  const q = tensorBinding(device, label, "q", plan.q, inputs.q);
  const k = tensorBinding(device, label, "k", plan.k, inputs.k);
  const v = tensorBinding(device, label, "v", plan.v, inputs.v);
  const stateIn = inputs.state &&
    tensorBinding(device, label, "state", inputs.state.desc, inputs.state.buffer);
  checkBinding(device, label, "out", 4 * elements);
  checkBinding(device, label, "chunk states", 4 * workEntries);
  checkBinding(device, label, "state", 4 * stateEntries);
  checkBinding(device, label, "scores", 4 * scoreEntries);
  const performer = params.featureMap.kind === "performer";
  const featureBytes = (rows: number) => Math.max(16, 4 * rows * features);
  if (performer) {
    checkBinding(device, label, "q features", featureBytes(batch * heads * qLen));
    checkBinding(device, label, "k features", featureBytes(batch * kvHeads * kvLen));
  }
  // Compile after the size checks and before allocating: neither a size that cannot run nor a
  // shader error costs a compilation or touches the pool.
  const kernels = await linearKernels(req, plan);

  device.pushErrorScope("out-of-memory");
  device.pushErrorScope("validation");
  const uniforms: GPUBuffer[] = [];
  const uniform = (data: ArrayBuffer) => {
    const buffer = req.uniformPool.upload(data);
    uniforms.push(buffer);
    return buffer;
  };
  const temporaries: GPUBuffer[] = [];
  const temporary = (bytes: number, role: string) => {
    const buffer = pool.acquire(Math.max(16, bytes), `${role}: ${label}`);
    temporaries.push(buffer);
    return buffer;
  };
  const outF32 = pool.acquire(Math.max(16, 4 * elements), `out: ${label}`);
  const state = pool.acquire(Math.max(16, 4 * stateEntries), `state: ${label}`);
  const work = temporary(4 * workEntries, "chunk states");
  const decay = temporary(4 * heads, "decay");
  const gammas = normalizerOf(plan).decay;
  device.queue.writeBuffer(
    decay,
    0,
    Float32Array.from({ length: heads }, (_, h) => gammas?.[h] ?? 1),
  );
  const {
    linear: lb,
    decay: db,
    work: wb,
    literals: litb,
    stateIn: sb,
    out: ob,
    phiQ,
    phiK,
    matrix,
  } = LINEAR_BINDINGS;
  const params0 = uniform(
    paramsData(plan, { rows: batch * heads * qLen, cols: kvLen, headBase: 0 }),
  );
  const lits: Bindings = kernels.literals
    ? { [litb]: uniform(kernels.literals.buffer as ArrayBuffer) }
    : {};
  // Elementwise maps read q and k rows directly; Performer's passes read its features.
  const qRows: Bindings = performer
    ? { [phiQ]: temporary(featureBytes(batch * heads * qLen), "q features") }
    : { 1: q, ...lits };
  const kRows: Bindings = performer
    ? { [phiK]: temporary(featureBytes(batch * kvHeads * kvLen), "k features") }
    : { 2: k, ...lits };
  const run = (pipeline: GPUComputePipeline, total: number, bindings: Bindings) => {
    if (total === 0) return;
    const all = {
      0: params0,
      [lb]: uniform(linearData(plan, chunks, total, inputs.state?.desc)),
      ...bindings,
    };
    dispatch(device, pass, pipeline, all, grid(Math.ceil(total / LINEAR_WORKGROUP)));
  };
  const encoder = device.createCommandEncoder({ label });
  const pass = encoder.beginComputePass({ label });
  if (kernels.features) {
    const map = normalizerOf(plan).featureMap;
    if (map.kind !== "performer") throw new Error("unreachable");
    const wm = performerBuffer(device, pool, map, headDim);
    run(kernels.features.q, batch * heads * qLen * features, {
      1: q,
      [matrix]: wm,
      [phiQ]: qRows[phiQ],
    });
    run(kernels.features.k, batch * kvHeads * kvLen * features, {
      2: k,
      [matrix]: wm,
      [phiK]: kRows[phiK],
    });
  }
  run(kernels.chunks, workEntries, { ...kRows, 3: v, [db]: decay, [wb]: work });
  // Without an input state the scan never reads its binding: any small buffer stands in.
  const stateBinding = stateIn ?? temporary(16, "no state");
  run(kernels.scan, sharedEntries, { [db]: decay, [wb]: work, [sb]: stateBinding, [ob]: state });
  if (kernels.scores) {
    const scores = temporary(4 * scoreEntries, "scores");
    run(kernels.scores, scoreEntries, {
      ...qRows,
      ...kRows,
      [db]: decay,
      [LINEAR_BINDINGS.scores]: scores,
    });
    run(kernels.output, elements, {
      ...qRows,
      3: v,
      [db]: decay,
      [wb]: work,
      [sb]: stateBinding,
      [LINEAR_BINDINGS.scores]: scores,
      [ob]: outF32,
    });
  } else {
    run(kernels.output, elements, { ...qRows, [wb]: state, [ob]: outF32 });
  }
  const out = encodePack(req, pass, kernels, outF32, elements, { label, uniform, temporaries });
  const { uniformPool } = req;
  await submitChecked(device, pass, encoder, label, {
    pool,
    uniformPool,
    temporaries,
    uniforms,
    results: [out, state],
  });
  return { out, state };
}
