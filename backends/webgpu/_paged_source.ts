/**
 * The paged kernel's WGSL for a plan, and the query rows one workgroup holds: the decode kernel
 * in paged mode (see `_decode_keys_wgsl.ts`).
 * @module
 */
import type { KernelPlan } from "../../core/lower.ts";
import { decodeWgsl, decodeWorkgroupBytes } from "./kernels/decode_wgsl.ts";
import { flashVecAligned } from "./kernels/flash_wgsl.ts";
import type { MaterializedParams } from "./kernels/materialized_wgsl.ts";

/**
 * Rows one workgroup holds: the plan's tile rows, fewer where the device's workgroup memory
 * cannot hold them (large head dims).
 *
 * @throws {RangeError} If not even one row fits.
 */
export function pagedRows(plan: KernelPlan, device: GPUDevice): number {
  const limit = device.limits.maxComputeWorkgroupStorageSize;
  for (let rows = plan.tile.q; rows >= 1; rows--) {
    const need = decodeWorkgroupBytes({ ...plan.sizes, rows, tileKv: plan.tile.kv, paged: true });
    if (need <= limit) return rows;
  }
  throw new RangeError(
    `Cannot run paged ${plan.dtype} D${plan.sizes.headDim}/${plan.sizes.valueDim}: head dims must fit the device's maxComputeWorkgroupStorageSize ${limit} with one row`,
  );
}

/** WGSL of a paged plan's kernel. */
export function pagedSource(
  compiler: { readonly device: GPUDevice },
  plan: KernelPlan,
  base: MaterializedParams,
): string {
  return decodeWgsl({
    ...base,
    rows: pagedRows(plan, compiler.device),
    tileKv: plan.tile.kv,
    vec: flashVecAligned(plan),
    paged: true,
  });
}
