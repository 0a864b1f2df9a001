/**
 * `linearState()`: the empty recurrent state of linear attention, as a tensor of a backend.
 * @module
 */
import { linearStateShape } from "./core/linear.ts";
import { assertObject, fail } from "./core/_check.ts";
import type { AttentionSpec } from "./core/spec.ts";
import type { KernelPlan } from "./core/lower.ts";
import type { Backend, Tensor } from "./backends/backend.ts";

/**
 * A zeroed recurrent state for a linear spec or plan: `[B, Hq, F, Dv + 1]` f32 (`F`: the head dim,
 * or Performer's features), row `f` of a head holding `S[f, ·]` and `z[f]` last. A run returns
 * the state after its keys as a new tensor and never modifies the one it was given, so a refused
 * or failed call leaves it as it was. States are plain tensors: `backend.read()` serializes one
 * and `backend.tensor(data, shape)` restores it, on any backend.
 *
 * @param backend The backend that will run the plan.
 * @param spec A spec with `linear()` applied, or its plan.
 * @returns The state tensor, all zeros (no keys yet).
 * @throws {TypeError} If `backend` is not a Backend or the spec's normalizer is not linear.
 * @example
 * ```ts
 * import { attention, causal, compose, createBackend, linear, linearState, mask } from "@attend/attend";
 *
 * const cpu = await createBackend("cpu");
 * const token = cpu.tensor(new Float32Array(2 * 4).fill(0.5), [1, 2, 1, 4]);
 * const plan = cpu.plan(compose(mask(causal()), linear("elu"))(attention(token, token, token)));
 * let state = linearState(cpu, plan);
 * for (let step = 0; step < 3; step++) {
 *   // Decode one token at a time, carrying the state.
 *   ({ state } = await cpu.run(plan, { q: token, k: token, v: token, state }) as { state: typeof state });
 * }
 * // z of head 0, feature 0 holds three keys' φ(0.5) = 1.5.
 * if ((await cpu.read(state))[4] !== 4.5) throw new Error("three keys folded in");
 * cpu.dispose();
 * ```
 */
export function linearState(
  backend: Backend,
  spec: Pick<AttentionSpec, "q" | "v" | "normalizer"> | KernelPlan,
): Tensor {
  const context = "create linear state";
  assertObject(backend, context, "backend", "a Backend");
  if (typeof backend.tensor !== "function") {
    fail("type", context, "backend.tensor", "a function", backend.tensor);
  }
  assertObject(spec, context, "spec", "a linear spec or plan");
  if (spec.normalizer === "softmax") {
    fail("type", context, "spec.normalizer", "linear (apply linear())", spec.normalizer);
  }
  const shape = linearStateShape(spec);
  return backend.tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, "f32");
}
