/**
 * A plan's pipelines: which kernel sources a flash, paged or materialized plan runs, generated
 * once per plan object. Kept apart from encoding because the backend also compiles ahead of any
 * run (`prepare()` warms the cache), and the paged and low-rank encoders reuse the same pipelines.
 * @module
 */
import type { KernelPlan } from "../../core/lower.ts";
import { pagedSource } from "./_paged_source.ts";
import type { PipelineCache } from "./_pipelines.ts";
import { decodeFits, decodeWgsl } from "./kernels/decode_wgsl.ts";
import { flashChunks, flashVecAligned, flashWgsl } from "./kernels/flash_wgsl.ts";
import {
  type MaterializedParams,
  outputWgsl,
  packF16Wgsl,
  scoresWgsl,
  softmaxWgsl,
} from "./kernels/materialized_wgsl.ts";
import { mergeStatesWgsl } from "./kernels/merge_states_wgsl.ts";

/** What compiling a plan's kernels needs: the backend's device, caches and flash shape. */
export interface KernelCompiler {
  readonly device: GPUDevice;
  readonly pipelines: PipelineCache;
  /** The backend's pipelines per plan (see `compiledKernels`). */
  readonly compiled: WeakMap<KernelPlan, Promise<Kernels>>;
  /**
   * Flash kernel shape: keys per invocation, inner-loop unrolling, and whether row reductions
   * use subgroup shuffles.
   */
  readonly flash: {
    readonly keysPerThread: 4 | 8;
    readonly unroll: number;
    readonly subgroups: boolean;
  };
}

/** The pipelines a plan runs. */
export interface Kernels {
  readonly flash?: GPUComputePipeline;
  readonly scores?: GPUComputePipeline;
  readonly softmax?: GPUComputePipeline;
  readonly output?: GPUComputePipeline;
  /** Packs f32 results to f16 storage. */
  readonly pack?: GPUComputePipeline;
  /** Merges the states of a split plan's key splits. */
  readonly merge?: GPUComputePipeline;
}

/** A plan's family, dtype and sizes: the label of its pipelines, passes and errors. */
export function shapeLabel(plan: KernelPlan): string {
  const s = plan.sizes;
  return `${plan.family} ${plan.dtype} B${s.batch} H${s.heads}/${s.kvHeads} Nq${s.qLen} Nk${s.kvLen} D${s.headDim}/${s.valueDim}`;
}

/**
 * The flash kernel for a plan (the decode kernel where `decodeFits`): vector loads when aligned,
 * chunks from the device's limits.
 */
function flashSource(
  compiler: KernelCompiler,
  plan: KernelPlan,
  base: MaterializedParams,
): string {
  const vec = flashVecAligned(plan);
  const limit = compiler.device.limits.maxComputeWorkgroupStorageSize;
  // Query rows that fit one tile (decode): the decode kernel, same interface, shaped for
  // bandwidth.
  if (decodeFits(plan, limit)) {
    const rows = plan.sizes.qLen * plan.pack;
    return decodeWgsl({ ...base, rows, tileKv: plan.tile.kv, vec });
  }
  const shape = {
    tile: plan.tile,
    keysPerThread: compiler.flash.keysPerThread,
    valueDim: base.valueDim,
    vec,
  };
  const chunks = flashChunks(
    limit,
    shape,
    base.headDim,
  );
  if (!chunks) {
    throw new RangeError(
      `Cannot run ${
        shapeLabel(plan)
      }: flash tile ${plan.tile.q}x${plan.tile.kv} does not fit the device's maxComputeWorkgroupStorageSize ${limit}`,
    );
  }
  const { unroll, subgroups } = compiler.flash;
  return flashWgsl({ ...base, ...shape, ...chunks, unroll, ...(subgroups ? { subgroups } : {}) });
}

async function compileKernels(compiler: KernelCompiler, plan: KernelPlan): Promise<Kernels> {
  const { pipelines } = compiler;
  const label = shapeLabel(plan);
  const params: MaterializedParams = {
    headDim: plan.sizes.headDim,
    valueDim: plan.sizes.valueDim,
    dtype: plan.dtype,
    mask: plan.mask,
    scoreMod: plan.scoreMod,
    sinkLogits: plan.sinkLogits,
  };
  const pack = plan.dtype === "f16" ? pipelines.get("pack f16", packF16Wgsl()) : undefined;
  if (plan.family === "flash" || plan.family === "paged") {
    const merge = plan.splits > 1
      ? pipelines.get(`merge states: ${label}`, mergeStatesWgsl(plan))
      : undefined;
    const source = plan.family === "paged"
      ? pagedSource(compiler, plan, params)
      : flashSource(compiler, plan, params);
    return {
      flash: await pipelines.get(`${plan.family}: ${label}`, source),
      pack: await pack,
      merge: await merge,
    };
  }
  return {
    scores: await pipelines.get(`scores: ${label}`, scoresWgsl(params)),
    softmax: await pipelines.get(`softmax: ${label}`, softmaxWgsl(params)),
    output: await pipelines.get(`output: ${label}`, outputWgsl(params)),
    pack: await pack,
  };
}

/**
 * A plan's pipelines, generated and looked up once per plan object: the sources (a flash kernel
 * unrolls to tens of kilobytes) are not rebuilt and rehashed on every run.
 */
export function compiledKernels(compiler: KernelCompiler, plan: KernelPlan): Promise<Kernels> {
  let kernels = compiler.compiled.get(plan);
  if (!kernels) {
    kernels = compileKernels(compiler, plan);
    kernels.catch(() => compiler.compiled.delete(plan));
    compiler.compiled.set(plan, kernels);
  }
  return kernels;
}
