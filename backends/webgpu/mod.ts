/**
 * The WebGPU backend: WGSL kernels generated from plans (flash, materialized, hierarchical,
 * linear), a size-bucketed buffer pool, a pipeline cache keyed by source, one command encoder per
 * run.
 *
 * ```ts ignore
 * import { createWebGpuBackend } from "@attend/attend/webgpu";
 * import { attention, causal, mask } from "@attend/attend/core";
 *
 * const gpu = await createWebGpuBackend();
 * const x = gpu.tensor(new Float32Array(2 * 128 * 64).fill(0.1), [1, 2, 128, 64]);
 * const { out } = await gpu.run(gpu.plan(mask(causal())(attention(x, x, x))), { q: x, k: x, v: x });
 * console.log(gpu.stats());
 * ```
 * @module
 */
import { assertPlan, type KernelPlan, lower } from "../../core/lower.ts";
import type { AttentionSpec, TileShape } from "../../core/spec.ts";
import {
  contiguousStrides,
  type DType,
  isContiguous,
  numel,
  tensorDesc,
} from "../../core/tensor_desc.ts";
import type {
  AttentionState,
  Backend,
  BackwardInputs,
  Gradients,
  OwnedStorage,
  RunInputs,
  RunOutputs,
  Tensor,
} from "../backend.ts";
import { checkStates } from "../_check_states.ts";
import { checkBackwardInputs } from "../_check_backward.ts";
import { type EncodeEnv, encodeGradients, encodeRun } from "./_route.ts";
import { mergeStateBuffers } from "./_merge.ts";
import {
  checkOpen,
  checkReadTarget,
  checkRunInputs,
  checkTensorData,
  checkTensorList,
  ownedStorage,
  storageToRelease,
} from "../_check_inputs.ts";
import { checkOptions, fail } from "../../core/_check.ts";
import { BufferPool, type PoolStats, UniformPool } from "./_buffer_pool.ts";
export type { PoolStats } from "./_buffer_pool.ts";
import { acquireDevice, assertAlive, type GpuContext } from "./_device.ts";
export type { SubgroupSizes } from "./_device.ts";
import { compiledKernels, type KernelCompiler } from "./_compile.ts";
import { assertLiteralsFit } from "./_literals.ts";
import { hierarchicalKernels } from "./_hierarchical.ts";
import { linearKernels } from "./_linear_kernels.ts";
import { copyRows, type RowsContext } from "./_rows.ts";
import { checkPages, checkRows } from "../_check_pages.ts";
import { lowRankKernels } from "./_low_rank.ts";
import { linearStateShape } from "../../core/linear.ts";
import { type CompileStats, PipelineCache } from "./_pipelines.ts";
export type { CompileStats } from "./_pipelines.ts";
import { readBack, StagingPool } from "./_readback.ts";
import { writeElements } from "./_upload.ts";
import { flashSubgroupsFit } from "./kernels/flash_wgsl.ts";
import { defaultFlashTile, type WebGpuCaps, webGpuCaps } from "./_caps.ts";
export { type WebGpuCaps, webGpuCaps } from "./_caps.ts";

/** Storage of a WebGPU tensor. */
export interface GpuStorage extends OwnedStorage {
  /** The buffer (from the pool). */
  readonly buffer: GPUBuffer;
}

/** Counters of a WebGPU backend: its buffer pool, staging buffers and compiled pipelines. */
export interface WebGpuStats extends PoolStats, CompileStats {
  /** Bytes of mappable staging buffers kept idle for reads. */
  readonly stagingBytes: number;
}

/** The WebGPU backend, with device-level extras for tests and benchmarks. */
export interface WebGpuBackend extends Backend {
  /** Capabilities, with the device's optional features. */
  readonly caps: WebGpuCaps;
  /** The device. */
  readonly device: GPUDevice;
  /** Adapter description. */
  readonly adapterName: string;
  /** Buffer pool, staging and compilation counters. */
  stats(): WebGpuStats;
  /** Restarts the pool's peak tracking. */
  resetPeak(): void;
  /** Resolves when all submitted work has finished. */
  sync(): Promise<void>;
}

/** Options of `createWebGpuBackend`. */
export interface WebGpuOptions {
  /**
   * Flash tile (query rows × key rows, multiples of 4). Default: the largest of 128×64, 64×64,
   * 32×32 the device's workgroup limits allow; 16×16 on software fallbacks.
   */
  readonly flashTile?: TileShape;
  /** Keys per flash invocation (4 or 8). Default 4: more invocations hide latency better. */
  readonly flashKeysPerThread?: 4 | 8;
  /**
   * Times the flash kernel's inner loops are unrolled: a power of two up to 64. Default 16 on
   * hardware (1.1× faster than 4 and 2% faster than 32 on an H100); 4 on software fallbacks,
   * whose JIT is slow on unrolled code.
   */
  readonly flashUnroll?: number;
  /**
   * Whether the flash kernel reduces row maxima and totals with subgroup shuffles where the
   * device grants subgroups large enough for a row group. Default true; false keeps the
   * workgroup-memory reductions (for comparisons).
   */
  readonly flashSubgroups?: boolean;
}

const UNROLLS = [1, 2, 4, 8, 16, 32, 64] as const;

/**
 * Creates a WebGPU backend on the best adapter.
 *
 * @param options Tuning options.
 * @returns The backend.
 * @throws {Error} If WebGPU or an adapter is unavailable.
 * @throws {TypeError} If `options` is not an object or has an unknown key (naming the nearest).
 * @throws {RangeError} If `options.flashTile` does not fit the device, `options.flashUnroll` is
 * not a power of two up to 64 or `options.flashKeysPerThread` not 4 or 8 (the last two checked
 * before a device is acquired).
 * @example
 * ```ts ignore
 * import { createWebGpuBackend } from "@attend/attend/webgpu";
 * const gpu = await createWebGpuBackend();
 * console.log(gpu.adapterName, gpu.stats().liveBytes);
 * ```
 */
export async function createWebGpuBackend(options: WebGpuOptions = {}): Promise<WebGpuBackend> {
  checkOptions("create WebGPU backend", "options", options, {
    flashTile: "object",
    flashKeysPerThread: "number",
    flashUnroll: "number",
    flashSubgroups: "boolean",
  });
  const { flashUnroll, flashKeysPerThread } = options;
  if (flashUnroll !== undefined && !(UNROLLS as readonly number[]).includes(flashUnroll)) {
    throw new RangeError(
      `Cannot create WebGPU backend: flashUnroll must be a power of two up to 64, current value is ${flashUnroll}`,
    );
  }
  if (flashKeysPerThread !== undefined && flashKeysPerThread !== 4 && flashKeysPerThread !== 8) {
    throw new RangeError(
      `Cannot create WebGPU backend: flashKeysPerThread must be 4 or 8, current value is ${flashKeysPerThread}`,
    );
  }
  const ctx: GpuContext = await acquireDevice();
  const { device } = ctx;
  const keysPerThread = flashKeysPerThread ?? 4;
  const tile = options.flashTile ?? defaultFlashTile(device.limits, ctx.fallback, keysPerThread);
  const subgroups = (options.flashSubgroups ?? true) && ctx.subgroups &&
    flashSubgroupsFit(tile, keysPerThread, ctx.subgroupSizes?.min ?? 0);
  let caps: WebGpuCaps;
  try {
    caps = webGpuCaps(device.limits, tile, keysPerThread, { ...ctx, subgroupKernels: subgroups });
  } catch (e) {
    device.destroy();
    throw e;
  }
  const unroll = options.flashUnroll ?? (ctx.fallback ? 4 : 16);
  const owner = {};
  const pool = new BufferPool(device, device.limits.maxBufferSize);
  const staging = new StagingPool(device);
  const uniformPool = new UniformPool(device);
  const compiler: KernelCompiler = {
    device,
    pipelines: new PipelineCache(device),
    compiled: new WeakMap(),
    flash: { keysPerThread, unroll, subgroups },
  };
  const env: EncodeEnv = { ...compiler, pool, uniformPool, staging };
  let disposed = false;
  const rowsContext: RowsContext = { device, pool, uniformPool, pipelines: compiler.pipelines };

  const usable = () => {
    checkOpen(disposed, "webgpu");
    assertAlive(ctx);
  };
  const storageOf = (t: Tensor, role: string) => ownedStorage<GpuStorage>(t, "webgpu", owner, role);
  const wrap = (buffer: GPUBuffer, shape: readonly number[], dtype: DType): Tensor => {
    const desc = tensorDesc(shape, dtype);
    const storage: GpuStorage = { owner, elements: numel(desc), buffer, released: false };
    return Object.freeze({ backend: "webgpu", storage, ...desc });
  };
  /** Checks every tensor, then reads each into the target `targetOf` gives it, in one trip. */
  const readAll = async (tensors: readonly Tensor[], targetOf: (t: Tensor) => Float32Array) => {
    usable();
    checkTensorList(tensors);
    const role = (i: number) => tensors.length > 1 ? `tensors[${i}]` : "tensor";
    const buffers = tensors.map((t, i) => storageOf(t, role(i)).buffer);
    const requests = tensors.map((desc, i) => ({
      desc,
      buffer: buffers[i],
      target: targetOf(desc),
    }));
    await readBack(device, staging, requests);
    return requests.map((r) => r.target);
  };

  return {
    name: "webgpu",
    caps,
    device,
    adapterName: ctx.adapterName,
    tensor(data: ArrayLike<number>, shape: readonly number[], dtype: DType = "f32"): Tensor {
      usable();
      const desc = tensorDesc(shape, dtype);
      checkTensorData(data, desc);
      const elements = numel(desc);
      const bytes = dtype === "f16" ? 2 * (elements + (elements & 1)) : 4 * elements;
      const buffer = pool.acquire(Math.max(4, bytes), `tensor [${shape}] ${dtype}`);
      try {
        writeElements(device.queue, buffer, data, dtype);
      } catch (e) {
        pool.release(buffer); // a refused upload leaves the pool as it was
        throw e;
      }
      return wrap(buffer, shape, dtype);
    },
    async read(t: Tensor): Promise<Float32Array> {
      return (await readAll([t], (t) => new Float32Array(numel(t))))[0];
    },
    async readInto(t: Tensor, target: Float32Array): Promise<Float32Array> {
      return (await readAll([t], (t) => (checkReadTarget(target, t, "tensor"), target)))[0];
    },
    readMany(tensors: readonly Tensor[]): Promise<Float32Array[]> {
      return readAll(tensors, (t) => new Float32Array(numel(t)));
    },
    plan(spec: AttentionSpec): KernelPlan {
      checkOpen(disposed, "webgpu");
      const plan = lower(spec, caps);
      assertLiteralsFit(device, plan);
      return plan;
    },
    async prepare(plan: KernelPlan): Promise<void> {
      usable();
      assertPlan(plan, caps);
      assertLiteralsFit(device, plan);
      if (plan.family === "hierarchical") await hierarchicalKernels(compiler, plan);
      else if (plan.lowRank) await lowRankKernels({ ...compiler, plan });
      else if (plan.family === "linear") await linearKernels(compiler, plan);
      else await compiledKernels(compiler, plan);
    },
    async run(plan: KernelPlan, io: RunInputs): Promise<RunOutputs> {
      usable();
      assertPlan(plan, caps);
      assertLiteralsFit(device, plan);
      const inputs = checkRunInputs<GpuStorage>(plan, io, "webgpu", owner);
      const pages = checkPages(plan, io);
      const { batch, heads, qLen, kvLen, valueDim } = plan.sizes;
      const result = await encodeRun(env, plan, io, inputs, pages);
      return {
        out: wrap(result.out, [batch, heads, qLen, valueDim], plan.dtype),
        ...(result.lse ? { lse: wrap(result.lse, [batch, heads, qLen], "f32") } : {}),
        ...(result.probs ? { probs: wrap(result.probs, [batch, heads, qLen, kvLen], "f32") } : {}),
        ...(result.state ? { state: wrap(result.state, linearStateShape(plan), "f32") } : {}),
      };
    },
    async backward(plan: KernelPlan, io: BackwardInputs): Promise<Gradients> {
      usable();
      assertPlan(plan, caps);
      const { storages, gradient } = checkBackwardInputs<GpuStorage>(plan, io, "webgpu", owner);
      const software = ctx.fallback;
      const result = await encodeGradients(env, plan, io, storages, { gradient, software });
      const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = plan.sizes;
      const { dq, dk, dv, ...params } = result;
      return {
        dq: wrap(dq, [batch, heads, qLen, headDim], plan.dtype),
        dk: wrap(dk, [batch, kvHeads, kvLen, headDim], plan.dtype),
        dv: wrap(dv, [batch, kvHeads, kvLen, valueDim], plan.dtype),
        ...params,
      };
    },
    async scatterRows(target: Tensor, rows: Int32Array, source: Tensor): Promise<void> {
      usable();
      const context = "scatter rows";
      const into = storageOf(target, "target").buffer;
      let from = { desc: source as Tensor, buffer: storageOf(source, "source").buffer };
      checkRows(context, target, rows, source);
      // A source viewing the target is copied out first: one dispatch cannot read and write it.
      const staged = from.buffer === into
        ? await copyRows(rowsContext, "gather", from, Int32Array.from(rows, (_, i) => i))
        : undefined;
      if (staged) from = { desc: tensorDesc(source.shape, source.dtype) as Tensor, buffer: staged };
      try {
        await copyRows(rowsContext, "scatter", from, rows, into);
      } finally {
        if (staged) pool.release(staged);
      }
    },
    async gatherRows(source: Tensor, rows: Int32Array): Promise<Tensor> {
      usable();
      const buffer = storageOf(source, "source").buffer;
      checkRows("gather rows", source, rows);
      const out = await copyRows(rowsContext, "gather", { desc: source, buffer }, rows);
      return wrap(out, [rows.length, ...source.shape.slice(1)], source.dtype);
    },
    async mergeStates(states: readonly AttentionState[]): Promise<AttentionState> {
      usable();
      const { rows, width } = checkStates(states);
      const buffers = states.map((s, i) => {
        for (const role of ["out", "lse"] as const) {
          if (!isContiguous(s[role])) {
            fail(
              "range",
              "merge states",
              `states[${i}].${role}.strides`,
              `contiguous [${contiguousStrides(s[role].shape)}]`,
              s[role].strides,
            );
          }
        }
        return {
          out: storageOf(s.out, `states[${i}].out`).buffer,
          lse: storageOf(s.lse, `states[${i}].lse`).buffer,
        };
      });
      const dtype = states[0].out.dtype;
      const merged = await mergeStateBuffers(rowsContext, buffers, rows, width, dtype);
      return {
        out: wrap(merged.out, states[0].out.shape, dtype),
        lse: wrap(merged.lse, states[0].lse.shape, "f32"),
      };
    },
    release(t: Tensor): void {
      checkOpen(disposed, "webgpu");
      const storage = storageToRelease<GpuStorage>(t, "webgpu", owner);
      if (!storage) return;
      storage.released = true;
      pool.release(storage.buffer);
    },
    dispose(): void {
      if (disposed) return;
      disposed = true;
      pool.destroy();
      staging.trim();
      uniformPool.trim();
      device.destroy();
    },
    stats: () => ({
      ...pool.stats(),
      stagingBytes: staging.idleBytes,
      ...compiler.pipelines.stats(),
    }),
    resetPeak: () => pool.resetPeak(),
    sync: () => device.queue.onSubmittedWorkDone(),
  };
}
