/**
 * The CPU flash kernel on WebAssembly SIMD micro-kernels: pack every head once, run the
 * query-tile rows, copy the f32 results out. TypeScript keeps masks, layouts and orchestration.
 * @module
 */
import { compileExpr } from "../../../core/evaluate.ts";
import { planLayout } from "../../../core/lower.ts";
import type { RunInputs } from "../../backend.ts";
import type { KernelContext } from "../_kernel_context.ts";
import type { WasmEngine } from "./_engine.ts";
import { packFlashInputs } from "./_flash_pack.ts";
import { flashRegions } from "./_flash_regions.ts";
import { runFlashRows } from "./_flash_rows.ts";

/** Runs the flash kernel of `ctx.plan` on one thread into `ctx.out` / `ctx.lse`. */
export function runFlashWasm(ctx: KernelContext, io: RunInputs, engine: WasmEngine): void {
  const { plan } = ctx;
  const { batch, heads, qLen, valueDim } = plan.sizes;
  const layout = planLayout(plan);
  const regions = flashRegions(plan, 1);
  const memory = engine.reserve(regions.bytes);
  packFlashInputs(memory, plan, regions, io);
  const rows = {
    kernels: engine.kernels({
      headDim: plan.sizes.headDim,
      tileCols: regions.tileCols,
      valueCols: regions.valueCols,
    }),
    memory,
    plan,
    layout,
    regions,
    mask: plan.mask && compileExpr(plan.mask),
    scoreMod: plan.scoreMod && compileExpr(plan.scoreMod),
    env: { b: 0, h: 0, qIdx: 0, kvIdx: 0, qLen, kvLen: plan.sizes.kvLen, score: 0 },
  };
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) runFlashRows(rows, b, h, 0, layout.rows, 0);
  }
  const outAt = regions.out / 4, lseAt = regions.lse / 4;
  ctx.out.set(memory.subarray(outAt, outAt + batch * heads * qLen * valueDim));
  ctx.lse?.set(memory.subarray(lseAt, lseAt + batch * heads * qLen));
}
