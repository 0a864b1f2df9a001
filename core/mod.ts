/**
 * The pure, platform-free core of attend: tensor descriptors, mask and score expressions,
 * attention specs, transforms, lowering to kernel plans, and cost reports.
 *
 * ```ts
 * import { attention, causal, compose, explain, lower, mask, softcap, tensorDesc } from "@attend/attend/core";
 * import { cpuCaps } from "@attend/attend/cpu";
 *
 * const x = tensorDesc([1, 4, 128, 64]);
 * const spec = compose(mask(causal()), softcap(30))(attention(x, x, x));
 * console.log(explain(lower(spec, cpuCaps)).summary);
 * ```
 * @module
 */
export * from "./tensor_desc.ts";
export * from "./expr.ts";
export * from "./expr_tree.ts";
export * from "./evaluate.ts";
export * from "./to_wgsl.ts";
export * from "./interval.ts";
export * from "./tile_lists.ts";
export * from "./classify_blocks.ts";
export * from "./masks.ts";
export * from "./spec.ts";
export * from "./transforms.ts";
export * from "./score_mods.ts";
export * from "./score_mod_gradient.ts";
export * from "./lower.ts";
export * from "./explain.ts";
export * from "./explain_backward.ts";
export * from "./errors.ts";
export * from "./hierarchy.ts";
export * from "./linear.ts";
export * from "./low_rank.ts";
export * from "./performer_matrix.ts";
export * from "./plan_layout.ts";
export * from "./paging.ts";
