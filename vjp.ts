/**
 * `vjp()`: attention's forward pass (softmax or linear), and a function that turns the gradient of a loss
 * with respect to its output into the gradients with respect to its inputs and parameters.
 * @module
 */
import type { AttentionSpec } from "./core/spec.ts";
import { UnsupportedSpecError } from "./core/errors.ts";
import { featureMapGradient, scoreModGradient } from "./core/score_mod_gradient.ts";
import { assertObject, checkOptions } from "./core/_check.ts";
import type { Backend, Gradients, Tensor } from "./backends/backend.ts";
import { assertBackend } from "./_attend_options.ts";

/** The forward pass's results and its backward pass. */
export interface VjpResult {
  /** `[B, Hq, Nq, Dv]` in the spec's dtype. */
  readonly out: Tensor;
  /**
   * `[B, Hq, Nq]` f32: what the backward pass recomputes the probabilities from (softmax specs;
   * absent for linear attention, whose backward pass recomputes its denominators).
   */
  readonly lse?: Tensor;
  /**
   * The gradients given `∂loss/∂out` (`[B, Hq, Nq, Dv]` in the spec's dtype, any view). Reads
   * q, k, v, `out` and `lse`, so none may be released before it; it may be called again with
   * another `dOut` and gives identical bits for the same one.
   */
  backward(dOut: Tensor): Promise<Gradients>;
}

const CONTEXT = "run vjp";

/**
 * Runs attention and returns its vector-Jacobian product. Softmax attention the memory-efficient
 * way (FlashAttention-2), saving only `out` and `lse`; the backward pass recomputes the
 * probabilities tile by tile. Gradients flow to q, k and v (GQA: summed over each KV head's
 * query heads), to the spec's sink logits, and to every `headParam` of its score modifier (ALiBi
 * slopes) through the modifier's symbolic derivative (`scoreModGradient()`); masks and the
 * softcap are applied as in the forward pass. Rows that see no key get zero gradients.
 * Linear attention (`linear()`, non-causal or causal chunked) saves `out`; its backward pass runs
 * the chunked recurrence forward (the key-side state) and in reverse (the query-side state), so
 * it stays O(N) in time and memory, and returns q, k, v gradients (through the feature map:
 * elementwise, custom Exprs by their symbolic derivative, Performer's features) and `dDecay`.
 *
 * @param backend A backend with `backward()` (the CPU backend has one).
 * @param spec Softmax attention over `io`'s tensors (masks, modifiers, sinks, GQA, any views);
 * its `outputs` are replaced: the forward pass returns `out` and `lse`, never `probs`. Or linear
 * attention (without an input state).
 * @param io The tensors the spec describes.
 * @returns `out`, `lse` and `backward(dOut)`.
 * @throws {TypeError} For a non-backend, a spec or `io` that is not an object, or tensors the
 * backend's `run()` refuses, before any work.
 * @throws {UnsupportedSpecError} For a backend without `backward()`, a hierarchical, paged or
 * low-rank spec, or a score modifier or custom feature map with an op that has no derivative,
 * naming the backend, field and value, before any work.
 * @example
 * ```ts
 * import { createBackend, vjp, attention, causal, mask } from "@attend/attend";
 * import { assertAlmostEquals } from "@std/assert";
 * const cpu = await createBackend("cpu");
 * const q = cpu.tensor([1, 0], [1, 1, 1, 2]);
 * const k = cpu.tensor([1, 0, 0, 1], [1, 1, 2, 2]);
 * const v = cpu.tensor([1, 0], [1, 1, 2, 1]);
 * const { out, backward } = await vjp(cpu, mask(causal())(attention(q, k, v, { scale: 1 })), { q, k, v });
 * // out = p = e / (e + 1), the weight of key 0; d out / d v = (p, 1 - p).
 * const p = Math.E / (Math.E + 1);
 * assertAlmostEquals((await cpu.read(out))[0], p, 1e-6);
 * const { dv, dq } = await backward(cpu.tensor([1], [1, 1, 1, 1]));
 * const [dv0, dv1] = await cpu.read(dv);
 * assertAlmostEquals(dv0, p, 1e-6);
 * assertAlmostEquals(dv1, 1 - p, 1e-6);
 * // d out / d q = p (1 - p) (k0 - k1): raising q·k0 moves weight to key 0.
 * assertAlmostEquals((await cpu.read(dq))[0], p * (1 - p), 1e-6);
 * ```
 */
export async function vjp(
  backend: Backend,
  spec: AttentionSpec,
  io: { readonly q: Tensor; readonly k: Tensor; readonly v: Tensor },
): Promise<VjpResult> {
  assertBackend(CONTEXT, backend);
  if (typeof backend.backward !== "function") {
    throw new UnsupportedSpecError(backend.name, "backward", "absent");
  }
  assertObject(spec, CONTEXT, "spec", "an AttentionSpec from attention()");
  assertObject(io, CONTEXT, "io", "an object { q, k, v }");
  checkOptions(CONTEXT, "io", io, { q: "object", k: "object", v: "object" });
  for (const field of ["hierarchy", "paging", "lowRank"] as const) {
    if (spec[field]) throw new UnsupportedSpecError(backend.name, `backward of ${field}`, "set");
  }
  const linear = spec.normalizer !== "softmax";
  if (spec.scoreMod) scoreModGradient(spec.scoreMod, backend.name);
  if (linear) featureMapGradient(spec.normalizer.featureMap, backend.name);
  const outputs = Object.freeze({ lse: !linear, probs: false });
  const plan = backend.plan(Object.freeze({ ...spec, outputs }));
  if (!(linear ? ["linear"] : ["flash", "materialized"]).includes(plan.family)) {
    throw new UnsupportedSpecError(backend.name, "backward of family", plan.family);
  }
  const { q, k, v } = io;
  const { out, lse } = await backend.run(plan, { q, k, v });
  return {
    out,
    ...(lse ? { lse } : {}),
    backward: (dOut) => backend.backward!(plan, { q, k, v, out, ...(lse ? { lse } : {}), dOut }),
  };
}
