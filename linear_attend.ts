/**
 * `linearAttend()`: linear attention in one call, shaped like `attend()`.
 * @module
 */
import { causal as causalMask } from "./core/masks.ts";
import { attention } from "./core/spec.ts";
import { compose, groupHeads, mask, type Transform } from "./core/transforms.ts";
import { assertObject, checkOptions, fail } from "./core/_check.ts";
import { type FeatureMapLike, linear } from "./variants/linear.ts";
import type { Backend, RunOutputs, Tensor } from "./backends/backend.ts";

/** Options of `linearAttend()`. */
export interface LinearAttendOptions {
  /** The feature map: `"elu"`, `"relu"`, `"identity"`, `performer()` or an Expr over `score`. */
  readonly featureMap: FeatureMapLike;
  /** Each query sees keys up to its position (bottom-right aligned). */
  readonly causal?: boolean;
  /** Decay γ in (0, 1], one or one per query head (needs `causal`). */
  readonly decay?: number | readonly number[];
  /** Keys per chunk, 1..1024; chosen by `lower()` when absent. */
  readonly chunk?: number;
  /** Divide by `φ(q)ᵀ z + ε` (default true). */
  readonly normalize?: boolean;
  /** ε of the denominator (default 1e-6). */
  readonly epsilon?: number;
  /** Multiplier of `q·k` Performer's features estimate `exp` of; `1/sqrt(D)` by default. */
  readonly scale?: number;
  /** Recurrent state of earlier keys (from `linearState()` or an earlier call's result). */
  readonly state?: Tensor;
}

const CONTEXT = "run linear attention";

/**
 * Runs linear attention (see `linear()`) on tensors of one backend: fewer KV heads than query
 * heads means GQA/MQA, `Nq != Nk` cross-attention. Returns `out` and the state after this call's
 * keys; pass it back as `state` to go on (streaming decode, long sequences in pieces): the pieces
 * give what one call over the whole sequence gives.
 *
 * @param backend The backend owning q, k, v (and the state).
 * @param q Queries `[B, Hq, Nq, D]` (any strided view).
 * @param k Keys `[B, Hkv, Nk, D]`.
 * @param v Values `[B, Hkv, Nk, Dv]`.
 * @param options Feature map, causal, decay, chunk, `normalize`, ε, scale, state.
 * @returns `{ out, state }`.
 * @throws {TypeError} For a non-backend, non-tensors, an unknown option or one of the wrong kind,
 * an unknown feature map, or a state that is not an f32 tensor of this backend, before any work.
 * @throws {RangeError} For bad sizes, a decay outside (0, 1], a chunk outside 1..1024, or a state
 * of another shape, before any work.
 * @throws {UnsupportedSpecError} If the backend does not run linear attention.
 * @example
 * ```ts
 * import { createBackend, linearAttend } from "@attend/attend";
 *
 * const cpu = await createBackend("cpu");
 * const data = Float32Array.from({ length: 8 * 4 }, (_, i) => Math.sin(i));
 * const x = cpu.tensor(data, [1, 1, 8, 4]);
 * const whole = await linearAttend(cpu, x, x, x, { featureMap: "elu", causal: true });
 * // The same sequence in two pieces of 4, the state carried.
 * const [a, b] = [0, 4].map((at) => cpu.tensor(data.slice(at * 4, at * 4 + 16), [1, 1, 4, 4]));
 * const first = await linearAttend(cpu, a, a, a, { featureMap: "elu", causal: true });
 * const second = await linearAttend(cpu, b, b, b, { featureMap: "elu", causal: true, state: first.state });
 * const [y, y2] = [await cpu.read(whole.out), await cpu.read(second.out)];
 * if (y2.some((v, i) => Math.abs(v - y[16 + i]) > 1e-5)) throw new Error("pieces = one call");
 * cpu.dispose();
 * ```
 */
export async function linearAttend(
  backend: Backend,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: LinearAttendOptions,
): Promise<RunOutputs> {
  assertObject(backend, CONTEXT, "backend", "a Backend");
  for (const method of ["plan", "run"] as const) {
    if (typeof backend[method] !== "function") {
      fail("type", CONTEXT, `backend.${method}`, "a function", backend[method]);
    }
  }
  assertObject(options, CONTEXT, "options", "an object { featureMap, … }");
  // The feature map and decay take several kinds: linear() checks them.
  const opts = checkOptions(CONTEXT, "options", {
    ...options,
    featureMap: undefined,
    decay: undefined,
  }, {
    featureMap: "object",
    causal: "boolean",
    decay: "number",
    chunk: "number",
    normalize: "boolean",
    epsilon: "number",
    scale: "number",
    state: "object",
  });
  const { featureMap, decay, chunk, normalize, epsilon } = options;
  const phi = linear(featureMap, { decay, chunk, normalize, epsilon });
  const spec = attention(q, k, v, { scale: opts.scale });
  const transforms: Transform[] = [];
  if (spec.k.shape[1] !== spec.q.shape[1]) transforms.push(groupHeads());
  if (opts.causal) transforms.push(mask(causalMask()));
  const plan = backend.plan(compose(...transforms, phi)(spec));
  return await backend.run(plan, { q, k, v, ...(opts.state ? { state: opts.state } : {}) });
}
