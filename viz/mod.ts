/**
 * Pictures of attention for notebooks and reports: `heatmap()` renders any matrix as PNG bytes
 * in plain TypeScript (or through `OffscreenCanvas` where the runtime has one), and
 * `maskMatrix()` / `layoutMatrix()` turn a mask and a plan's block layout into matrices.
 *
 * ```ts
 * import { and, causal, not, window } from "@attend/attend";
 * import { heatmap, maskMatrix } from "@attend/attend/viz";
 *
 * // Causal, minus a sliding window of 4 keys: what a "far past only" head sees.
 * const m = maskMatrix(and(causal(), not(window(3, 0))), { qLen: 16, kvLen: 16 });
 * const png = await heatmap(m, { scale: 8 });
 * // In a Deno notebook: Deno.jupyter.image(png)
 * ```
 * @module
 */
export * from "./heatmap.ts";
export * from "./mask_matrix.ts";
export * from "./layout_matrix.ts";
