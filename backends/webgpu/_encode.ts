/**
 * Encodes one attention run: every dispatch of the plan's kernel family in one command encoder,
 * one submit, errors raised with the kernel's label and shape.
 * @module
 */
import type { TileLists } from "../../core/tile_lists.ts";
import { UnsupportedSpecError } from "../../core/errors.ts";
import type { KernelPlan } from "../../core/lower.ts";
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
import { literalWords } from "../../core/to_wgsl.ts";
import { LITERALS_BINDING, modifierLiterals } from "./kernels/_common_wgsl.ts";
import { flashChunks, flashVecAligned, flashWgsl } from "./kernels/flash_wgsl.ts";
import { decodeFits, decodeWgsl } from "./kernels/decode_wgsl.ts";
import { pagedSource } from "./_paged_source.ts";
import { MERGE_THREADS, mergeStatesWgsl } from "./kernels/merge_states_wgsl.ts";
import {
  type MaterializedParams,
  outputWgsl,
  packF16Wgsl,
  scoresWgsl,
  softmaxWgsl,
} from "./kernels/materialized_wgsl.ts";

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

/** What a run needs. */
export interface EncodeRequest extends KernelCompiler {
  readonly pool: BufferPool;
  readonly uniformPool: UniformPool;
  readonly plan: KernelPlan;
  readonly layout: TileLists;
  readonly inputs: { readonly q: GPUBuffer; readonly k: GPUBuffer; readonly v: GPUBuffer };
}

/** Buffers a run produces (owned by the caller, from the pool). */
export interface EncodeResult {
  readonly out: GPUBuffer;
  readonly lse?: GPUBuffer;
  readonly probs?: GPUBuffer;
}

function shapeLabel(plan: KernelPlan): string {
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

const tileWordsOf = new WeakMap<TileLists, Uint32Array>();

/**
 * The layout as the `u32`s the flash kernel reads: where the row offsets and the entries start,
 * each unit's first row, the row offsets, then one `col << 1 | partial` per listed tile.
 * Converted once per layout.
 */
function tileWords(layout: TileLists): Uint32Array {
  let words = tileWordsOf.get(layout);
  if (!words) {
    const { unitRow, rowStart, tileCol, partial } = layout;
    const starts = 2 + unitRow.length, entries = starts + rowStart.length;
    words = new Uint32Array(entries + tileCol.length);
    words.set([starts, entries]);
    words.set(unitRow, 2);
    words.set(rowStart, starts);
    for (let e = 0; e < tileCol.length; e++) words[entries + e] = (tileCol[e] << 1) | partial[e];
    tileWordsOf.set(layout, words);
  }
  return words;
}

/** A plan's literals: how many, as uniform words (padded to vec4s), and whether any are the
 * mask's or modifier's. */
interface PlanLiterals {
  readonly count: number;
  readonly words: Uint32Array;
  readonly scoreLiterals: boolean;
}

const literalsOf = new WeakMap<KernelPlan, PlanLiterals>();

/**
 * A plan's lifted literals as uniform words, and whether its mask and modifier have any (the
 * scores pass reads only those, never the sink logits). Generated once per plan: it runs the
 * WGSL generator.
 */
function planLiterals(plan: KernelPlan): PlanLiterals {
  let known = literalsOf.get(plan);
  if (!known) {
    const table = modifierLiterals(plan.mask, plan.scoreMod, plan.sinkLogits);
    known = {
      count: table.values.length,
      words: literalWords(table),
      scoreLiterals: modifierLiterals(plan.mask, plan.scoreMod).values.length > 0,
    };
    literalsOf.set(plan, known);
  }
  return known;
}

/**
 * Refuses a plan whose lifted literals (mask and score-modifier constants, tables, sink logits)
 * exceed the device's uniform binding, before any pipeline is built: the shader compiler would
 * otherwise fail with "uniform block too big".
 *
 * @throws {UnsupportedSpecError} Naming the literals' size and the device's limit.
 */
export function assertLiteralsFit(device: GPUDevice, plan: KernelPlan): void {
  const bytes = planLiterals(plan).words.byteLength;
  const limit = device.limits.maxUniformBufferBindingSize;
  if (bytes > limit) {
    throw new UnsupportedSpecError(
      "webgpu",
      "mask, scoreMod and sinkLogits literals",
      `${bytes} bytes (the device binds at most ${limit})`,
    );
  }
}

/** Encodes, submits and checks one run. */
export async function encodeAttention(req: EncodeRequest): Promise<EncodeResult> {
  const { device, pool, plan, inputs } = req;
  const { batch, heads, qLen, kvLen, valueDim } = plan.sizes;
  const label = shapeLabel(plan);
  const bindingLimit = device.limits.maxStorageBufferBindingSize;
  const bound = {} as Record<"q" | "k" | "v", Binding>;
  for (const role of ["q", "k", "v"] as const) {
    bound[role] = tensorBinding(device, label, role, plan[role], inputs[role]);
  }
  const outBytes = 4 * batch * heads * qLen * valueDim;
  checkBinding(device, label, "out", outBytes);
  const scoreBytesPerHead = 4 * qLen * kvLen;
  const headsPerPass = plan.family === "flash"
    ? 65535
    : plan.outputs.probs
    ? batch * heads
    : Math.max(
      1,
      Math.min(batch * heads, Math.floor(bindingLimit / 2 / Math.max(4, scoreBytesPerHead))),
    );
  if (
    plan.family === "materialized" && headsPerPass * scoreBytesPerHead > bindingLimit
  ) {
    throw new RangeError(
      `Cannot run ${label}: scores need ${
        headsPerPass * scoreBytesPerHead
      } bytes, over the device's maxStorageBufferBindingSize ${bindingLimit}; use the flash kernel`,
    );
  }
  const splitBytes = plan.splits > 1 ? 4 * plan.splits * batch * heads * qLen * valueDim : 0;
  checkBinding(device, label, `${plan.splits} key splits' states`, splitBytes);
  // Compile after the size checks and before allocating, so neither a size that cannot run nor
  // a shader error costs a compilation or touches the pool.
  const kernels = await compiledKernels(req, plan);

  device.pushErrorScope("out-of-memory");
  device.pushErrorScope("validation");
  const temporaries: GPUBuffer[] = [];
  const uniforms: GPUBuffer[] = [];
  const uniform = (data: ArrayBuffer) => {
    const buffer = req.uniformPool.upload(data);
    uniforms.push(buffer);
    return buffer;
  };
  const outF32 = pool.acquire(outBytes, `out: ${label}`);
  const lse = pool.acquire(Math.max(4, 4 * batch * heads * qLen), `lse: ${label}`);
  if (!plan.outputs.lse) temporaries.push(lse);
  let probs: GPUBuffer | undefined;
  const encoder = device.createCommandEncoder({ label });
  const pass = encoder.beginComputePass({ label });
  const { count: literals, words, scoreLiterals } = planLiterals(plan);
  const lits: Bindings = literals
    ? { [LITERALS_BINDING]: uniform(words.buffer as ArrayBuffer) }
    : {};
  const qkv: Bindings = { 1: bound.q, 2: bound.k, 3: bound.v, ...lits };
  const totalHeads = batch * heads;
  const flashUnits = totalHeads / plan.pack;

  if (kernels.flash) {
    const words = tileWords(req.layout);
    const tiles = pool.acquire(4 * words.length, `tiles: ${label}`);
    device.queue.writeBuffer(tiles, 0, words);
    temporaries.push(tiles);
    // Key splits write their states here; the merge pass combines them into out and lse.
    const rows = batch * heads * qLen, splits = plan.splits;
    const [partOut, partLse] = splits > 1
      ? [
        pool.acquire(Math.max(4, 4 * splits * rows * valueDim), `split states: ${label}`),
        pool.acquire(Math.max(4, 4 * splits * rows), `split lse: ${label}`),
      ]
      : [outF32, lse];
    if (splits > 1) temporaries.push(partOut, partLse);
    let params: GPUBuffer | undefined;
    for (let base = 0; base < flashUnits; base += headsPerPass) {
      const count = Math.min(headsPerPass, flashUnits - base);
      params = uniform(
        paramsData(plan, { rows: req.layout.rows, cols: req.layout.cols, headBase: base }),
      );
      if (req.layout.rows > 0) {
        dispatch(
          device,
          pass,
          kernels.flash,
          { 0: params, ...qkv, 4: tiles, 5: partOut, 6: partLse },
          [req.layout.rows, count, splits],
        );
      }
    }
    if (params && rows > 0) {
      encodeMerge(device, pass, kernels, plan, { params, partOut, partLse, outF32, lse, lits });
    }
  } else if (kernels.scores && kernels.softmax && kernels.output) {
    const scores = pool.acquire(Math.max(4, headsPerPass * scoreBytesPerHead), `scores: ${label}`);
    if (plan.outputs.probs) probs = scores;
    else temporaries.push(scores);
    for (let base = 0; base < totalHeads; base += headsPerPass) {
      const count = Math.min(headsPerPass, totalHeads - base);
      const params = uniform(paramsData(plan, { rows: count * qLen, cols: kvLen, headBase: base }));
      const tiles = (n: number) => Math.ceil(n / 16);
      if (qLen * kvLen > 0) {
        dispatch(device, pass, kernels.scores, {
          0: params,
          1: bound.q,
          2: bound.k,
          ...(scoreLiterals ? lits : {}),
          4: scores,
        }, [tiles(kvLen), tiles(qLen), count]);
      }
      if (qLen > 0) {
        dispatch(
          device,
          pass,
          kernels.softmax,
          { 0: params, 4: scores, 5: lse, ...(plan.sinkLogits ? lits : {}) },
          grid(count * qLen),
        );
        if (valueDim > 0) {
          dispatch(device, pass, kernels.output, { 0: params, 3: bound.v, 4: scores, 5: outF32 }, [
            tiles(valueDim),
            tiles(qLen),
            count,
          ]);
        }
      }
    }
  }

  const out = encodePack(req, pass, kernels, outF32, batch * heads * qLen * valueDim, {
    label,
    uniform,
    temporaries,
  });
  await submitChecked(device, pass, encoder, label, {
    pool,
    uniformPool: req.uniformPool,
    temporaries,
    uniforms,
    results: [out, ...(plan.outputs.lse ? [lse] : []), ...(probs ? [probs] : [])],
  });
  return { out, ...(plan.outputs.lse ? { lse } : {}), ...(probs ? { probs } : {}) };
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
  kernels: Kernels,
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

/**
 * A run's f32 `out` packed into f16 storage when the plan stores f16 (the f32 buffer then joins
 * the run's scratch); else `outF32` itself.
 */
export function encodePack(
  req: { readonly device: GPUDevice; readonly pool: BufferPool },
  pass: GPUComputePassEncoder,
  kernels: { readonly pack?: GPUComputePipeline },
  outF32: GPUBuffer,
  elements: number,
  run: { label: string; uniform: (data: ArrayBuffer) => GPUBuffer; temporaries: GPUBuffer[] },
): GPUBuffer {
  if (!kernels.pack) return outF32;
  const out = req.pool.acquire(
    Math.max(4, 2 * (elements + (elements & 1))),
    `out f16: ${run.label}`,
  );
  run.temporaries.push(outF32);
  const count = run.uniform(new Uint32Array([elements, 0, 0, 0]).buffer);
  const words = Math.ceil(elements / 2);
  if (words > 0) {
    dispatch(
      req.device,
      pass,
      kernels.pack,
      { 0: outF32, 1: out, 2: count },
      grid(Math.ceil(words / 256)),
    );
  }
  return out;
}
