/**
 * `layoutMatrix()`: a plan's block layout at the resolution of its scores, for `heatmap()`.
 * @module
 */
import { BlockKind, firstRow, type KernelPlan, planLayout } from "../core/mod.ts";
import type { Matrix } from "./heatmap.ts";

/**
 * Spreads a plan's tile kinds over the score matrix: each element gets the `BlockKind` of the
 * tile covering it (0 empty, 1 partial, 2 full), so the picture lines up with `maskMatrix()`.
 * Rows are the plan's tile rows: with grouped heads packed (`plan.pack > 1`) row `f` is query
 * `⌊f / pack⌋` of head `f mod pack` in the group.
 *
 * ```
 * causal(), 4 × 4 scores, 2 × 2 tiles
 * 1 1 0 0
 * 1 1 0 0
 * 2 2 1 1
 * 2 2 1 1
 * ```
 *
 * @param plan A plan from `lower()` or `backend.plan()`.
 * @param at The batch element and query head whose layout is shown (they differ only where the
 * mask reads `b` or `h`). Default: the first of each.
 * @returns A `qLen · pack × kvLen` matrix of BlockKinds.
 * @throws {RangeError} If `at.b` or `at.h` is not a batch element or head of the plan.
 * @example
 * ```ts
 * import { attention, causal, lower, mask, tensorDesc, tile } from "@attend/attend";
 * import { cpuCaps } from "@attend/attend/cpu";
 * import { layoutMatrix } from "@attend/attend/viz";
 * const x = tensorDesc([1, 1, 4, 8]);
 * const plan = lower(tile({ q: 2, kv: 2 })(mask(causal())(attention(x, x, x))), cpuCaps);
 * const m = layoutMatrix(plan);
 * if (Array.from(m.data).join("") !== "1100110022112211") throw new Error("causal tiles");
 * ```
 */
export function layoutMatrix(
  plan: KernelPlan,
  at: { readonly b?: number; readonly h?: number } = {},
): Matrix {
  const layout = planLayout(plan);
  const limits = { b: plan.sizes.batch, h: plan.sizes.heads };
  for (const key of ["b", "h"] as const) {
    const value = at[key] ?? 0;
    if (!Number.isInteger(value) || value < 0 || value >= Math.max(1, limits[key])) {
      throw new RangeError(
        `Cannot draw layout: at.${key} must be an integer in 0..${
          Math.max(1, limits[key]) - 1
        }, current value is ${value}`,
      );
    }
  }
  const base = firstRow(layout, plan.sizes.heads, at.b ?? 0, at.h ?? 0);
  const [rows, cols] = [plan.sizes.qLen * layout.pack, plan.sizes.kvLen];
  const data = new Uint8Array(rows * cols); // tiles not listed are empty (0)
  for (let r = 0; r < rows; r++) {
    const row = base + Math.floor(r / layout.tileQ);
    for (let e = layout.rowStart[row]; e < layout.rowStart[row + 1]; e++) {
      const c0 = layout.tileCol[e] * layout.tileKv, c1 = Math.min(cols, c0 + layout.tileKv);
      const kind = layout.partial[e] ? BlockKind.partial : BlockKind.full;
      data.fill(kind, r * cols + c0, r * cols + c1);
    }
  }
  return { rows, cols, data };
}
