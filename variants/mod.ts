/**
 * Named attention masks, each a bool Expr built from the core's operators, so they combine with
 * `and`/`or`/`not` and with hand-written Exprs: sliding, dilated and global-token windows, the
 * Sparse Transformer's fixed and strided patterns, BigBird, prefix LM, packed documents,
 * attention sinks, and block masks given as tile matrices. Sizes may be given per query head
 * where a head-specific pattern makes sense.
 *
 * ```ts
 * import { attend, createBackend, or } from "@attend/attend";
 * import { sinks, slidingWindow } from "@attend/attend/variants";
 *
 * const backend = await createBackend("cpu");
 * const x = backend.tensor(new Float32Array(2 * 16 * 8).fill(0.5), [1, 2, 16, 8]);
 * const { out } = await attend(backend, x, x, x, { mask: or(slidingWindow([2, 4]), sinks(1)) });
 * // Every value of v is 0.5, so every visible mix of them is too.
 * if (!(await backend.read(out)).every((y) => y === 0.5)) throw new Error("expected 0.5");
 * backend.dispose();
 * ```
 * @module
 */
export * from "./sliding_window.ts";
export * from "./dilated_window.ts";
export * from "./fixed_pattern.ts";
export * from "./strided.ts";
export * from "./global_tokens.ts";
export * from "./big_bird.ts";
export * from "./prefix_lm.ts";
export * from "./documents.ts";
export * from "./sinks.ts";
export * from "./block_mask.ts";
export * from "./hierarchical.ts";
export * from "./linear.ts";
export * from "./performer.ts";
export * from "./low_rank.ts";
