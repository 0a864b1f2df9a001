/**
 * attend: attention described as immutable specs built from composable transforms, lowered to
 * kernel plans and run on pluggable backends (CPU everywhere, WebGPU on any GPU).
 *
 * ```ts
 * import { attend, createBackend } from "@attend/attend";
 *
 * const backend = await createBackend("cpu");
 * const data = Float32Array.from({ length: 2 * 64 * 32 }, () => Math.random() - 0.5);
 * const x = backend.tensor(data, [1, 2, 64, 32]);
 * const { out } = await attend(backend, x, x, x, { causal: true });
 * console.log((await backend.read(out)).slice(0, 4));
 * ```
 * @module
 */
export * from "./core/mod.ts";
export * from "./variants/mod.ts";
export * from "./kv/mod.ts";
export * from "./backends/backend.ts";
export * from "./backends/create_backend.ts";
export * from "./attend.ts";
export * from "./attend_vjp.ts";
export * from "./linear_attend.ts";
export * from "./linear_state.ts";
export * from "./paged_attend.ts";
export * from "./vjp.ts";
export * from "./merge_states.ts";
