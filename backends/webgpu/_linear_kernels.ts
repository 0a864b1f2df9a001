/**
 * What a linear plan is built from on the device, made once per backend: the forward pipelines
 * (Performer's features, chunk states, scan, intra-chunk scores, output, f16 packing) and
 * Performer's random matrix. Also the plan's derived numbers that the forward and backward
 * encoders both read (kernel parameters, label, state sizes, the map's literals), so that the
 * two cannot drift apart. The matrix is uploaded once per (seed, features, head dim,
 * orthogonal) and backend, and kept until `dispose()` destroys the pool.
 * @module
 */
import type { Expr } from "../../core/expr.ts";
import { featureCount, type FeatureMap, type LinearNormalizer } from "../../core/linear.ts";
import { isCausal, stateSharers } from "../../core/_linear_lower.ts";
import type { KernelPlan } from "../../core/lower.ts";
import { performerMatrix } from "../../core/performer_matrix.ts";
import { UnsupportedSpecError } from "../../core/errors.ts";
import { literalWords } from "../../core/to_wgsl.ts";
import type { BufferPool } from "./_buffer_pool.ts";
import { perPlan, type PipelineCache } from "./_pipelines.ts";
import {
  chunkStatesWgsl,
  featureLiterals,
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

/** A linear plan's normalizer (the plan's family guarantees its kind). */
export const normalizerOf = (plan: KernelPlan): LinearNormalizer =>
  plan.normalizer as LinearNormalizer;

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

/** Query heads per key-side state (see `stateSharers` in core). */
export function sharersOf(plan: KernelPlan): number {
  return stateSharers(normalizerOf(plan), plan.sizes.heads, plan.sizes.kvHeads);
}

/** A plan's state sizes (f32 entries), as the key-side passes lay them out. */
export function stateSizes(plan: KernelPlan): {
  /** Key chunks, `⌈Nk/C⌉`. */
  readonly chunks: number;
  /** One state per query head, `B·Hq·F·(Dv+1)`: the new state's. */
  readonly state: number;
  /** One state per group of sharing heads, `B·Hs·F·(Dv+1)`: one chunk's in the key-side work. */
  readonly shared: number;
} {
  const { batch, heads, kvLen, valueDim } = plan.sizes;
  const state = batch * heads * paramsOf(plan).features * (valueDim + 1);
  return {
    chunks: Math.ceil(kvLen / plan.tile.kv),
    state,
    shared: state / Math.max(1, sharersOf(plan)),
  };
}

/**
 * The map's lifted literals as uniform words (those of its `gradient` after them, for a backward
 * pass), or none when it lifts none.
 *
 * @throws {UnsupportedSpecError} If they exceed the device's uniform binding size.
 */
export function featureMapLiterals(
  device: GPUDevice,
  map: FeatureMap,
  gradient?: Expr,
): Uint32Array | undefined {
  const table = featureLiterals(map, gradient);
  if (table.values.length === 0) return undefined;
  const literals = literalWords(table);
  const limit = device.limits.maxUniformBufferBindingSize;
  if (literals.byteLength > limit) {
    throw new UnsupportedSpecError(
      "webgpu",
      "normalizer.featureMap literals",
      `${literals.byteLength} bytes (the device binds at most ${limit})`,
    );
  }
  return literals;
}

async function compile(compiler: LinearCompiler, plan: KernelPlan): Promise<LinearKernels> {
  const { pipelines, device } = compiler;
  const label = runLabel(plan);
  const params = paramsOf(plan);
  const literals = featureMapLiterals(device, params.featureMap);
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

/**
 * A linear plan's pipelines, generated and looked up once per plan object and backend.
 * @throws {Error} If a shader fails to compile, naming it.
 * @throws {UnsupportedSpecError} If a custom map's literals exceed the uniform binding size.
 */
export const linearKernels: (compiler: LinearCompiler, plan: KernelPlan) => Promise<LinearKernels> =
  perPlan(compile);

/** Per buffer pool (one per backend), Performer matrices by seed and shape, uploaded once. */
const matricesOf = new WeakMap<BufferPool, Map<string, GPUBuffer>>();

/**
 * The device copy of a Performer matrix: uploaded on first use and then kept (never released to
 * the pool, so `dispose()` destroys it with the pool's handed-out buffers).
 */
export function performerBuffer(
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
