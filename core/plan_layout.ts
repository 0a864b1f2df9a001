/**
 * `planLayout()`: a plan's block layout, built once per mask structure and sizes.
 * @module
 */
import { exprKey } from "./expr_tree.ts";
import { assertPlan, type KernelPlan } from "./lower.ts";
import { type TileLists, tileLists } from "./tile_lists.ts";
import { fail } from "./_check.ts";

const layouts = new WeakMap<KernelPlan, TileLists>();
/** Layouts by mask structure and sizes, most recent last: plans that differ only in their
 * tensors' strides or offsets, or re-made for the same shape, share one. */
const layoutsByShape = new Map<string, TileLists>();
const LAYOUTS_KEPT = 32;

/**
 * The plan's block layout: the key tiles each query tile visits (built once per mask structure
 * and sizes, after `assertPlan`).
 *
 * @param plan The plan.
 * @returns Its tile lists.
 * @throws {TypeError} / {RangeError} If the plan is not what `lower()` makes of its spec.
 * @example
 * ```ts
 * import { attention, causal, lower, mask, planLayout, tensorDesc } from "@attend/attend/core";
 * import { cpuCaps } from "@attend/attend/cpu";
 * const x = tensorDesc([1, 1, 64, 8]);
 * const layout = planLayout(lower(mask(causal())(attention(x, x, x)), cpuCaps));
 * if (layout.rowStart.length !== layout.rows + 1) throw new Error("one offset per row, and one");
 * ```
 */
export function planLayout(plan: KernelPlan): TileLists {
  const known = layouts.get(plan);
  if (known) return known;
  assertPlan(plan);
  if (plan.family === "hierarchical" || plan.family === "linear") {
    fail("type", "read block layout", "plan.family", '"flash" or "materialized"', plan.family);
  }
  const { tile, sizes, pack, mask } = plan;
  const { batch, heads, qLen, kvLen } = sizes;
  const shape = [mask ? exprKey(mask) : "", batch, heads, qLen, kvLen, tile.q, tile.kv, pack];
  const key = JSON.stringify(shape);
  let layout = layoutsByShape.get(key);
  if (layout) {
    layoutsByShape.delete(key);
  } else {
    layout = tileLists(mask, { batch, heads, qLen, kvLen, tileQ: tile.q, tileKv: tile.kv, pack });
  }
  layoutsByShape.set(key, layout);
  if (layoutsByShape.size > LAYOUTS_KEPT) {
    layoutsByShape.delete(layoutsByShape.keys().next().value!);
  }
  layouts.set(plan, layout);
  return layout;
}
