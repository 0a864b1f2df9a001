/**
 * `mergeStates()`: attention states over disjoint key sets combined into the state over their
 * union, on the states' backend.
 * @module
 */
import { fail } from "./core/_check.ts";
import type { AttentionState, Backend } from "./backends/backend.ts";

/**
 * Merges attention states `{ out, lse }` computed over disjoint sets of keys (say a shared prompt
 * prefix and each sequence's own suffix: cascade attention) into the state over all of them:
 * `lse = log Σ e^lse_s`, `out = Σ e^(lse_s - lse) · out_s`, exact up to rounding. A row no state
 * saw a key for gives zeros and `lse = -Infinity`.
 *
 * @param backend The backend owning the states.
 * @param states Two or more states: `out` `[..., Dv]` of one dtype and shape, `lse` `[...]` f32.
 * @returns New tensors: `out` in the states' dtype, `lse` f32.
 * @throws {TypeError} For a non-backend, states that are not `{ out, lse }` tensors of this
 * backend, or mixed dtypes; {RangeError} for fewer than two states or mismatched shapes; all
 * before any work.
 * @example
 * ```ts
 * import { attend, createBackend, mergeStates, slice } from "@attend/attend";
 * import { assertAlmostEquals } from "@std/assert";
 * const cpu = await createBackend("cpu");
 * const data = Float32Array.from({ length: 16 * 8 }, (_, i) => Math.sin(i));
 * const x = cpu.tensor(data, [1, 1, 16, 8]);
 * // Attention over keys 0..9 and over keys 10..15, merged, is attention over all 16 keys.
 * const [front, back] = [slice(x, 2, 0, 10), slice(x, 2, 10, 16)];
 * const a = await attend(cpu, x, front, front, { lse: true });
 * const b = await attend(cpu, x, back, back, { lse: true });
 * const merged = await mergeStates(cpu, [{ out: a.out, lse: a.lse! }, { out: b.out, lse: b.lse! }]);
 * const whole = await attend(cpu, x, x, x);
 * const [got, want] = await cpu.readMany([merged.out, whole.out]);
 * got.forEach((g, i) => assertAlmostEquals(g, want[i], 1e-6));
 * ```
 */
export async function mergeStates(
  backend: Backend,
  states: readonly AttentionState[],
): Promise<AttentionState> {
  if (
    backend === null || typeof backend !== "object" || typeof backend.mergeStates !== "function"
  ) {
    fail("type", "merge states", "backend", "a Backend with mergeStates()", backend);
  }
  return await backend.mergeStates(states);
}
