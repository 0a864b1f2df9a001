/**
 * The lines `explain()` and `explainBackward()` share: kernel, shape, FLOPs and memory.
 * @module
 */
import type { KernelPlan } from "./lower.ts";

/** Bytes in the largest binary unit that keeps the number at least 1. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) n /= 1024, i++;
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** A plan's kernel, as reports name it: family, backend and engine. */
export function kernelName(plan: KernelPlan): string {
  return `${plan.family} (${plan.backend}, ${plan.engine})`;
}

/** The first four lines of a report: kernel and tile, shape, FLOPs, memory. */
export function summaryLines(
  plan: KernelPlan,
  tile: string,
  flops: number,
  bytesMoved: number,
  scratchBytes: number,
  pass = "",
): string[] {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  return [
    `kernel   ${kernelName(plan)}${pass}, tile ${tile}, ${plan.dtype}${
      plan.splits > 1 ? `, keys split ${plan.splits} ways` : ""
    }`,
    `shape    B${batch} H${heads}/${kvHeads} Nq${qLen} Nk${kvLen} D${headDim}/${valueDim}`,
    `flops    ${(flops / 1e9).toFixed(3)} GFLOP`,
    `memory   ${formatBytes(bytesMoved)} moved, ${formatBytes(scratchBytes)} scratch`,
  ];
}
