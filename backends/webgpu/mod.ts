/**
 * The WebGPU backend: WGSL kernels generated from plans (flash and materialized), a
 * size-bucketed buffer pool, a pipeline cache keyed by source, one command encoder per run.
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
import { type BackendCaps, type KernelPlan, lower, planLayout } from "../../core/lower.ts";
import type { AttentionSpec, TileShape } from "../../core/spec.ts";
import {
  assertDType,
  contiguousStrides,
  type DType,
  extent,
  numel,
} from "../../core/tensor_desc.ts";
import type { Backend, RunInputs, RunOutputs, Tensor } from "../backend.ts";
import { checkOwner, checkRunInputs, checkTensorData } from "../_check_inputs.ts";
import { gatherStrided } from "../_strided.ts";
import { BufferPool, type PoolStats, UniformPool } from "./_buffer_pool.ts";
export type { PoolStats } from "./_buffer_pool.ts";
import { acquireDevice, assertAlive, type GpuContext } from "./_device.ts";
import { encodeAttention, type Kernels } from "./_encode.ts";
import { PipelineCache } from "./_pipelines.ts";
import { flashChunks, flashThreads } from "./kernels/flash_wgsl.ts";

/** Storage of a WebGPU tensor. */
export interface GpuStorage {
  /** The buffer (from the pool). */
  readonly buffer: GPUBuffer;
  /** Set by `release()`. */
  released: boolean;
}

/** The WebGPU backend, with device-level extras for tests and benchmarks. */
export interface WebGpuBackend extends Backend {
  /** The device. */
  readonly device: GPUDevice;
  /** Adapter description. */
  readonly adapterName: string;
  /** Buffer pool counters. */
  stats(): PoolStats;
  /** Restarts the pool's peak tracking. */
  resetPeak(): void;
  /** Resolves when all submitted work has finished. */
  sync(): Promise<void>;
}

const MAP_READ = 0x01, COPY_DST = 0x08;

function bufferOf(t: Tensor): GPUBuffer {
  const storage = t.storage as GpuStorage;
  if (storage.released) {
    throw new TypeError("Cannot use tensor: its storage was released, current state is released");
  }
  return storage.buffer;
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
}

const MAX_HEAD_DIM = 256;
const UNROLLS = [1, 2, 4, 8, 16, 32, 64] as const;

/** Flash tiles by preference: measured fastest first (bench/RESULTS.md). */
const HARDWARE_TILES: readonly TileShape[] = [
  { q: 128, kv: 64 },
  { q: 64, kv: 64 },
  { q: 32, kv: 32 },
  { q: 16, kv: 16 },
];

/** Whether the flash kernel can run a tile on a device with these limits. */
function flashTileFits(
  limits: GPUSupportedLimits,
  tile: TileShape,
  keysPerThread: 4 | 8,
): boolean {
  const widest = { tile, keysPerThread, valueDim: MAX_HEAD_DIM, vec: false };
  return tile.q > 0 && tile.kv > 0 && tile.q % 4 === 0 && tile.kv % keysPerThread === 0 &&
    flashThreads(tile, keysPerThread) <= limits.maxComputeInvocationsPerWorkgroup &&
    flashChunks(limits.maxComputeWorkgroupStorageSize, widest, MAX_HEAD_DIM) !== undefined;
}

/**
 * The first preferred tile the device runs; 16×16 on software fallbacks, whose shader JIT time
 * grows with the invocations and unrolled register blocks.
 */
function defaultFlashTile(
  limits: GPUSupportedLimits,
  fallback: boolean,
  keysPerThread: 4 | 8,
): TileShape {
  const small = { q: 16, kv: 16 };
  if (fallback) return small;
  return HARDWARE_TILES.find((t) => flashTileFits(limits, t, keysPerThread)) ?? small;
}

/**
 * Capabilities for a device's limits and flash tile.
 *
 * @param limits The device's limits.
 * @param tile The flash tile.
 * @param keysPerThread Keys per flash invocation.
 * @returns Caps for `lower()`.
 * @throws {RangeError} If the device cannot run the tile, naming it.
 * @example
 * ```ts
 * import { webGpuCaps } from "@attend/attend/webgpu";
 * const limits = {
 *   maxComputeWorkgroupStorageSize: 49152,
 *   maxComputeInvocationsPerWorkgroup: 1024,
 * } as GPUSupportedLimits;
 * const caps = webGpuCaps(limits, { q: 128, kv: 64 });
 * if (caps.flashTiles[0].tile.q !== 128) throw new Error("tile not kept");
 * ```
 */
export function webGpuCaps(
  limits: GPUSupportedLimits,
  tile: TileShape,
  keysPerThread: 4 | 8 = 4,
): BackendCaps {
  if (!flashTileFits(limits, tile, keysPerThread)) {
    throw new RangeError(
      `Cannot create WebGPU backend: flashTile must be positive multiples of 4 (kv of flashKeysPerThread ${keysPerThread}) within the device's workgroup limits, current value is ${tile.q}x${tile.kv}`,
    );
  }
  return Object.freeze({
    backend: "webgpu",
    families: Object.freeze(["materialized", "flash"] as const),
    dtypes: Object.freeze(["f32", "f16"] as const),
    flashTiles: Object.freeze([{ maxHeadDim: MAX_HEAD_DIM, tile: Object.freeze({ ...tile }) }]),
    anyTile: false,
    maxHeadDim: MAX_HEAD_DIM,
    materializeUpTo: 0,
    materializedScratch: "all-heads",
    packGroups: true,
  });
}

/**
 * Creates a WebGPU backend on the best adapter.
 *
 * @param options Tuning options.
 * @returns The backend.
 * @throws {Error} If WebGPU or an adapter is unavailable.
 * @throws {RangeError} If `options.flashTile` does not fit the device, or `options.flashUnroll`
 * is not a power of two up to 64 (checked before a device is acquired).
 * @example
 * ```ts ignore
 * import { createWebGpuBackend } from "@attend/attend/webgpu";
 * const gpu = await createWebGpuBackend();
 * console.log(gpu.adapterName, gpu.stats().liveBytes);
 * ```
 */
export async function createWebGpuBackend(options: WebGpuOptions = {}): Promise<WebGpuBackend> {
  const { flashUnroll } = options;
  if (flashUnroll !== undefined && !(UNROLLS as readonly number[]).includes(flashUnroll)) {
    throw new RangeError(
      `Cannot create WebGPU backend: flashUnroll must be a power of two up to 64, current value is ${flashUnroll}`,
    );
  }
  const ctx: GpuContext = await acquireDevice();
  const { device } = ctx;
  const keysPerThread = options.flashKeysPerThread ?? 4;
  const tile = options.flashTile ?? defaultFlashTile(device.limits, ctx.fallback, keysPerThread);
  let caps: BackendCaps;
  try {
    caps = webGpuCaps(device.limits, tile, keysPerThread);
  } catch (e) {
    device.destroy();
    throw e;
  }
  const unroll = options.flashUnroll ?? (ctx.fallback ? 4 : 16);
  const flash = { keysPerThread, unroll };
  const pool = new BufferPool(device, device.limits.maxBufferSize);
  const pipelines = new PipelineCache(device);
  const uniformPool = new UniformPool(device);
  const compiled = new WeakMap<KernelPlan, Promise<Kernels>>();

  function wrap(buffer: GPUBuffer, shape: readonly number[], dtype: DType): Tensor {
    return Object.freeze({
      backend: "webgpu",
      storage: { buffer, released: false } satisfies GpuStorage,
      dtype,
      shape: Object.freeze([...shape]),
      strides: Object.freeze(contiguousStrides(shape)),
      offset: 0,
    });
  }

  return {
    name: "webgpu",
    caps,
    device,
    adapterName: ctx.adapterName,
    tensor(data: ArrayLike<number>, shape: readonly number[], dtype: DType = "f32"): Tensor {
      assertAlive(ctx);
      assertDType(dtype);
      checkTensorData(data, shape);
      const n = numel({ shape });
      const host = dtype === "f16" ? new Float16Array(n + (n & 1)) : new Float32Array(n);
      host.set(data);
      const buffer = pool.acquire(Math.max(4, host.byteLength), `tensor [${shape}] ${dtype}`);
      device.queue.writeBuffer(buffer, 0, host.buffer, host.byteOffset, host.byteLength);
      return wrap(buffer, shape, dtype);
    },
    async read(t: Tensor): Promise<Float32Array> {
      assertAlive(ctx);
      checkOwner(t, "webgpu", "tensor");
      const source = bufferOf(t);
      const elementBytes = t.dtype === "f16" ? 2 : 4;
      const bytes = Math.ceil((extent(t) * elementBytes) / 4) * 4;
      if (bytes === 0) return new Float32Array(0);
      const staging = device.createBuffer({ size: bytes, usage: MAP_READ | COPY_DST });
      const encoder = device.createCommandEncoder({ label: "read" });
      encoder.copyBufferToBuffer(source, 0, staging, 0, bytes);
      device.queue.submit([encoder.finish()]);
      await staging.mapAsync(1);
      const raw = staging.getMappedRange().slice(0);
      staging.unmap();
      staging.destroy();
      const data = t.dtype === "f16" ? new Float16Array(raw) : new Float32Array(raw);
      return gatherStrided(data, t);
    },
    plan(spec: AttentionSpec): KernelPlan {
      return lower(spec, caps);
    },
    async run(plan: KernelPlan, io: RunInputs): Promise<RunOutputs> {
      assertAlive(ctx);
      checkRunInputs(plan, io, "webgpu");
      const { batch, heads, qLen, kvLen, valueDim } = plan.sizes;
      const result = await encodeAttention({
        device,
        pool,
        uniformPool,
        pipelines,
        compiled,
        plan,
        layout: planLayout(plan),
        flash,
        inputs: { q: bufferOf(io.q), k: bufferOf(io.k), v: bufferOf(io.v) },
      });
      return {
        out: wrap(result.out, [batch, heads, qLen, valueDim], plan.dtype),
        ...(result.lse ? { lse: wrap(result.lse, [batch, heads, qLen], "f32") } : {}),
        ...(result.probs ? { probs: wrap(result.probs, [batch, heads, qLen, kvLen], "f32") } : {}),
      };
    },
    release(t: Tensor): void {
      checkOwner(t, "webgpu", "tensor");
      const storage = t.storage as GpuStorage;
      if (storage.released) return;
      storage.released = true;
      pool.release(storage.buffer);
    },
    dispose(): void {
      pool.trim();
      uniformPool.trim();
      device.destroy();
    },
    stats: () => pool.stats(),
    resetPeak: () => pool.resetPeak(),
    sync: () => device.queue.onSubmittedWorkDone(),
  };
}
