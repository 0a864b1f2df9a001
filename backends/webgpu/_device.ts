/**
 * Adapter and device acquisition with the adapter's real limits, and lost-device handling.
 * @module
 */

/** The range of subgroup sizes a device may run a kernel's invocations in. */
export interface SubgroupSizes {
  /** The smallest subgroup, in invocations. */
  readonly min: number;
  /** The largest subgroup, in invocations. */
  readonly max: number;
}

/** A device plus what the backend needs to know about it. */
export interface GpuContext {
  /** The device. */
  readonly device: GPUDevice;
  /** Adapter description, e.g. "NVIDIA H100 80GB HBM3". */
  readonly adapterName: string;
  /** Whether `shader-f16` was granted. */
  readonly shaderF16: boolean;
  /** Whether `subgroups` was granted: WGSL may call `subgroupAdd`, `subgroupMax` and so on. */
  readonly subgroups: boolean;
  /** The adapter's subgroup sizes, where `subgroups` was granted and the adapter reports them. */
  readonly subgroupSizes?: SubgroupSizes;
  /** Whether the adapter is a software fallback (e.g. llvmpipe). */
  readonly fallback: boolean;
  /** Set once the device is lost, with the reason. */
  lostReason?: string;
}

const LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
] as const;

/**
 * Requests a high-performance adapter and a device with its real limits.
 * @throws {Error} If WebGPU or an adapter is unavailable.
 */
export async function acquireDevice(): Promise<GpuContext> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) {
    throw new Error("Cannot create WebGPU backend: navigator.gpu is unavailable in this runtime");
  }
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    throw new Error("Cannot create WebGPU backend: no adapter found, current value is null");
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of LIMITS) requiredLimits[name] = adapter.limits[name];
  const shaderF16 = adapter.features.has("shader-f16");
  const device = await requestDevice(adapter, requiredLimits, shaderF16 ? ["shader-f16"] : []);
  const subgroups = device.features.has("subgroups");
  const min = adapter.info?.subgroupMinSize, max = adapter.info?.subgroupMaxSize;
  const ctx: GpuContext = {
    device,
    adapterName: adapter.info?.description || adapter.info?.device || "unknown adapter",
    shaderF16,
    subgroups,
    ...(subgroups && typeof min === "number" && typeof max === "number"
      ? { subgroupSizes: { min, max } }
      : {}),
    fallback: adapter.info?.isFallbackAdapter === true,
  };
  device.lost.then((info) => {
    ctx.lostReason = `${info.reason ?? "unknown"}: ${info.message}`;
  });
  return ctx;
}

/**
 * A device with `features` and, where granted, `subgroups`. It is asked for even when the
 * adapter does not list it, since some grant it unlisted (an H100 under Deno). A refusal (a
 * runtime that does not know the name, or an adapter that lacks it) rejects, with a
 * `TypeError` in Deno, and the request is made again without it.
 */
async function requestDevice(
  adapter: GPUAdapter,
  requiredLimits: Record<string, number>,
  features: GPUFeatureName[],
): Promise<GPUDevice> {
  try {
    return await adapter.requestDevice({
      requiredLimits,
      requiredFeatures: [...features, "subgroups"],
    });
  } catch {
    return await adapter.requestDevice({ requiredLimits, requiredFeatures: features });
  }
}

/** Throws once a device is lost, so callers fail fast instead of hanging. */
export function assertAlive(ctx: GpuContext): void {
  if (ctx.lostReason !== undefined) {
    throw new Error(`Cannot use WebGPU backend: the device was lost (${ctx.lostReason})`);
  }
}
