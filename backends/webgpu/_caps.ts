/**
 * What a WebGPU backend tells `lower()`: the flash tiles a device's limits allow (measured
 * fastest first), the subgroup features it granted, and how many workgroups decode splits aim
 * for.
 * @module
 */
import type { BackendCaps } from "../../core/lower.ts";
import type { TileShape } from "../../core/spec.ts";
import type { SubgroupSizes } from "./_device.ts";
import { flashChunks, flashThreads } from "./kernels/flash_wgsl.ts";

/**
 * What the WebGPU backend found on its device, beside what `lower()` reads. Kernels that use an
 * optional feature read it here and keep a variant without it.
 */
export interface WebGpuCaps extends BackendCaps {
  /** Whether the device granted `subgroups` (`subgroupAdd`, `subgroupMax`, ... in WGSL). */
  readonly subgroups: boolean;
  /** Subgroup sizes the device may use; only with `subgroups`, where the adapter reports them. */
  readonly subgroupSizes?: SubgroupSizes;
}

const MAX_HEAD_DIM = 256;
/** Flash tiles by preference: measured fastest first (bench/RESULTS.md). */
const HARDWARE_TILES: readonly TileShape[] = [
  { q: 128, kv: 64 },
  { q: 64, kv: 64 },
  { q: 32, kv: 64 },
  { q: 16, kv: 64 },
  { q: 32, kv: 32 },
  { q: 16, kv: 16 },
];

/**
 * Workgroups a flash plan should keep in flight before its key tiles are split (decode). On an
 * H100 2048 was the best of 64, 256, 1024 and 2048 at batch 16 × 8k and 1 × 128k context, and
 * within 10% of the best at 1 × 32k (bench/RESULTS.md); smaller GPUs are as busy with it.
 */
const PARALLELISM = 2048;

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
export function defaultFlashTile(
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
 * @param features Optional device features granted, and whether the flash kernel uses
 * subgroups (then `engine` is `"wgsl-subgroups"`). Default: none.
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
 * if (caps.subgroups) throw new Error("no subgroups unless granted");
 * ```
 */
export function webGpuCaps(
  limits: GPUSupportedLimits,
  tile: TileShape,
  keysPerThread: 4 | 8 = 4,
  features: Pick<WebGpuCaps, "subgroups" | "subgroupSizes"> & {
    readonly subgroupKernels?: boolean;
  } = { subgroups: false },
): WebGpuCaps {
  if (!flashTileFits(limits, tile, keysPerThread)) {
    throw new RangeError(
      `Cannot create WebGPU backend: flashTile must be positive multiples of 4 (kv of flashKeysPerThread ${keysPerThread}) within the device's workgroup limits, current value is ${tile.q}x${tile.kv}`,
    );
  }
  return Object.freeze({
    backend: "webgpu",
    families: Object.freeze(["materialized", "flash", "hierarchical", "linear", "paged"] as const),
    dtypes: Object.freeze(["f32", "f16"] as const),
    // The chosen tile first; smaller preferred tiles the device also runs follow, for masks whose
    // query blocks the chosen tile's rows would straddle (see lower()).
    flashTiles: Object.freeze(
      [tile, ...HARDWARE_TILES.filter((t) => t.q < tile.q && t.kv <= tile.kv)]
        .filter((t, i) => i === 0 || flashTileFits(limits, t, keysPerThread))
        .map((t) => ({ maxHeadDim: MAX_HEAD_DIM, tile: Object.freeze({ ...t }) })),
    ),
    anyTile: false,
    maxHeadDim: MAX_HEAD_DIM,
    materializeUpTo: 0,
    materializedScratch: "all-heads",
    packGroups: true,
    engine: features.subgroupKernels ? "wgsl-subgroups" : "wgsl",
    parallelism: PARALLELISM,
    subgroups: features.subgroups,
    ...(features.subgroups && features.subgroupSizes
      ? { subgroupSizes: Object.freeze({ ...features.subgroupSizes }) }
      : {}),
  });
}
