/**
 * The CPU flash kernel on WebAssembly SIMD micro-kernels: pack every head once, run the
 * query-tile rows (on kernel threads too when the run is large enough to pay for them), copy the
 * f32 results out. TypeScript keeps masks, layouts and orchestration.
 * @module
 */
import { explain } from "../../../core/explain.ts";
import { planLayout } from "../../../core/plan_layout.ts";
import type { RunInputs } from "../../backend.ts";
import type { KernelContext } from "../_kernel_context.ts";
import type { WasmEngine } from "./_engine.ts";
import { packFlashInputs } from "./_flash_pack.ts";
import { flashRegions } from "./_flash_regions.ts";
import { flashRowsContext } from "./_flash_rows.ts";
import { runTasks } from "./_flash_tasks.ts";
import type { KernelThreads } from "./_threads.ts";

/** Below this many FLOPs a run stays on the calling thread: waking workers costs more. */
export const THREAD_MIN_FLOPS = 2 ** 27;

/** Runs the flash kernel of `ctx.plan` into `ctx.out` / `ctx.lse`. */
export async function runFlashWasm(
  ctx: KernelContext,
  io: RunInputs,
  engine: WasmEngine,
  threads?: KernelThreads,
): Promise<void> {
  const { plan } = ctx;
  const { batch, heads, qLen, valueDim } = plan.sizes;
  const layout = planLayout(plan);
  const threaded = threads !== undefined && threads.count > 1 &&
    explain(plan).flops >= THREAD_MIN_FLOPS;
  const regions = flashRegions(plan, threaded ? threads.count : 1);
  const rows = flashRowsContext(engine, plan, layout, regions);
  const { memory } = rows;
  packFlashInputs(memory, rows.kernels, plan, regions, io);
  const counter = new Int32Array(memory.buffer, regions.counter, 1);
  Atomics.store(counter, 0, 0);
  if (threaded) {
    const { rows: tileRows, pack, unitRow, rowStart, tileCol, partial } = layout;
    const lists = { rows: tileRows, pack, unitRow, rowStart, tileCol, partial };
    await threads.run(
      { kind: "run", plan, layout: lists, regions },
      () => runTasks(rows, counter, 0),
    );
  } else {
    runTasks(rows, counter, 0);
  }
  const outAt = regions.out / 4, lseAt = regions.lse / 4;
  ctx.out.set(memory.subarray(outAt, outAt + batch * heads * qLen * valueDim));
  ctx.lse?.set(memory.subarray(lseAt, lseAt + batch * heads * qLen));
}
