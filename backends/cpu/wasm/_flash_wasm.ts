/**
 * The CPU flash kernel on WebAssembly SIMD micro-kernels: pack every head once, run the
 * query-tile rows (on kernel threads too when the run is large enough to pay for them), copy the
 * f32 results out. TypeScript keeps masks, layouts and orchestration.
 * @module
 */
import { compileExpr } from "../../../core/evaluate.ts";
import { type KernelPlan, planLayout } from "../../../core/lower.ts";
import type { RunInputs } from "../../backend.ts";
import type { KernelContext } from "../_kernel_context.ts";
import type { WasmEngine } from "./_engine.ts";
import { packFlashInputs } from "./_flash_pack.ts";
import { flashRegions } from "./_flash_regions.ts";
import type { FlashRowsContext } from "./_flash_rows.ts";
import { runTasks } from "./_flash_tasks.ts";
import type { KernelThreads } from "./_threads.ts";

/** Below this many FLOPs a run stays on the calling thread: waking workers costs more. */
export const THREAD_MIN_FLOPS = 2 ** 27;

/** FLOPs of the tiles a plan visits. */
export function visitedFlops(plan: KernelPlan): number {
  const { batch, heads, headDim, valueDim } = plan.sizes;
  const layout = planLayout(plan);
  const tiles = layout.tileCol.length;
  return 2 * batch * heads * tiles * layout.tileQ * layout.tileKv * (headDim + valueDim);
}

/** Runs the flash kernel of `ctx.plan` into `ctx.out` / `ctx.lse`. */
export async function runFlashWasm(
  ctx: KernelContext,
  io: RunInputs,
  engine: WasmEngine,
  threads?: KernelThreads,
): Promise<void> {
  const { plan } = ctx;
  const { batch, heads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  const layout = planLayout(plan);
  const threaded = threads !== undefined && threads.count > 1 &&
    visitedFlops(plan) >= THREAD_MIN_FLOPS;
  const regions = flashRegions(plan, threaded ? threads.count : 1);
  const memory = engine.reserve(regions.bytes);
  const kernels = engine.kernels({
    headDim,
    tileCols: regions.tileCols,
    valueCols: regions.valueCols,
  });
  packFlashInputs(memory, kernels, plan, regions, io);
  const rows: FlashRowsContext = {
    kernels,
    memory,
    plan,
    layout,
    regions,
    mask: plan.mask && compileExpr(plan.mask),
    scoreMod: plan.scoreMod && compileExpr(plan.scoreMod),
    env: { b: 0, h: 0, qIdx: 0, kvIdx: 0, qLen, kvLen, score: 0 },
  };
  const counter = new Int32Array(memory.buffer, regions.counter, 1);
  Atomics.store(counter, 0, 0);
  if (threaded) {
    const { rows: tileRows, rowStart, tileCol, partial } = layout;
    await threads.run(
      { kind: "run", plan, layout: { rows: tileRows, rowStart, tileCol, partial }, regions },
      () => runTasks(rows, counter, 0),
    );
  } else {
    runTasks(rows, counter, 0);
  }
  const outAt = regions.out / 4, lseAt = regions.lse / 4;
  ctx.out.set(memory.subarray(outAt, outAt + batch * heads * qLen * valueDim));
  ctx.lse?.set(memory.subarray(lseAt, lseAt + batch * heads * qLen));
}
