/**
 * Linear attention: a feature map in place of the softmax.
 * @module
 */
import type { Expr } from "../core/expr.ts";
import {
  assertDecay,
  assertFeatureExpr,
  assertLinearNormalizer,
  type FeatureMap,
  LINEAR_EPSILON,
  type LinearNormalizer,
  MAX_CHUNK,
  type PerformerFeatures,
} from "../core/linear.ts";
import type { Transform } from "../core/transforms.ts";
import type { AttentionSpec } from "../core/spec.ts";
import { assertFinite, assertInteger, assertObject, checkOptions, fail } from "../core/_check.ts";
import { assertPerformer } from "../core/linear.ts";

/** A feature map as `linear()` takes it. */
export type FeatureMapLike = "elu" | "relu" | "identity" | PerformerFeatures | Expr;

/** Options of `linear()`. */
export interface LinearOptions {
  /**
   * Decay γ in (0, 1]: one for every head, or one per query head (RetNet's retention uses one per
   * head). Needs the causal mask. Default: none (γ = 1).
   */
  readonly decay?: number | readonly number[];
  /** Keys per chunk, 1..1024; `lower()` chooses when absent. Results do not depend on it. */
  readonly chunk?: number;
  /** Divide by `φ(q)ᵀ z + ε`. Default: true; false gives RetNet-style retention. */
  readonly normalize?: boolean;
  /** ε of the denominator, finite and at least 0. Default: 1e-6. */
  readonly epsilon?: number;
}

const CONTEXT = "create linear attention";
const NAMED = ["elu", "relu", "identity"];

function featureMap(map: unknown): FeatureMap {
  if (typeof map === "string") {
    if (!NAMED.includes(map)) {
      fail("type", CONTEXT, "featureMap", '"elu", "relu", "identity", performer() or an Expr', map);
    }
    return Object.freeze({ kind: map as "elu" | "relu" | "identity" });
  }
  assertObject(map, CONTEXT, "featureMap", '"elu", "relu", "identity", performer() or an Expr');
  if (map.kind === "performer") {
    assertPerformer(map, CONTEXT, "featureMap");
    const { features, seed, orthogonal } = map as unknown as PerformerFeatures;
    return Object.freeze({ kind: "performer", features, seed, orthogonal });
  }
  assertFeatureExpr(map, CONTEXT, "featureMap");
  return Object.freeze({ kind: "expr", expr: map as unknown as Expr });
}

/**
 * Linear attention (Katharopoulos et al.; Performer; RetNet's retention with `decay`): with φ the
 * feature map and query `i` at position `p = Nk − Nq + i` (bottom-right aligned, as masks are),
 *
 * `out_i = φ(q_i)ᵀ S_i / (φ(q_i)ᵀ z_i + ε)`, `S_i = Σ_j γ^(p−j) φ(k_j) v_jᵀ`, `z_i = Σ_j γ^(p−j) φ(k_j)`
 *
 * over every key, or over `j ≤ p` with `mask(causal())` (the only mask it runs). A query that
 * sees no key gives zeros. Feature maps: `"elu"` (`elu(x) + 1`), `"relu"`, `"identity"`,
 * `performer()`, or an Expr over `score` applied to each element (`exp(score)`, say). Elementwise
 * maps read q and k as they are; the spec's scale enters Performer's features only.
 *
 * ```
 * causal, Nq = Nk = 4, decay γ: weights γ^(p−j) of key j for query p
 * 1  0  0  0
 * γ  1  0  0
 * γ² γ  1  0
 * γ³ γ² γ  1
 * ```
 *
 * Cost per head: `O((Nq + Nk)·F·Dv)` for a state of `F × (Dv + 1)` (`F`: D, or Performer's `m`),
 * plus `O(Nq·C·(F + Dv))` inside chunks of `C` keys when causal; never an `Nq×Nk` buffer. A run
 * also returns the state after its keys, and takes one (`run(plan, { q, k, v, state })`) to go on
 * from earlier keys: streaming decode a token at a time, or a long sequence in pieces.
 *
 * Runs without a score modifier, sink logits, tile, hierarchy or `lse`/`probs` (`lower()` refuses
 * them). GQA and cross-attention (non-causal, `Nq != Nk`) work as with softmax.
 *
 * @param map The feature map.
 * @param options Decay, chunk, `normalize`, ε (see `LinearOptions`).
 * @returns The transform; it checks per-head decays against the spec's heads.
 * @throws {TypeError} For an unknown feature map, an Expr reading anything but `score`, or
 * options of the wrong kind or with an unknown key.
 * @throws {RangeError} For a decay outside (0, 1], a chunk outside 1..1024, a negative or
 * non-finite ε, Performer sizes out of range, or (on apply) decays for another head count.
 * @example
 * ```ts
 * import { createBackend, linearAttend } from "@attend/attend";
 *
 * const cpu = await createBackend("cpu");
 * const x = cpu.tensor(new Float32Array(1 * 2 * 16 * 8).fill(0.5), [1, 2, 16, 8]);
 * const { out } = await linearAttend(cpu, x, x, x, { featureMap: "elu", causal: true });
 * // Every value is 0.5, and normalized weights average them.
 * const y = await cpu.read(out);
 * if (y.some((a) => Math.abs(a - 0.5) > 1e-6)) throw new Error(`got ${y[0]}`);
 * cpu.dispose();
 * ```
 */
export function linear(map: FeatureMapLike, options?: LinearOptions): Transform {
  // A decay is a number or an array: checked below, by assertDecay.
  const listed = Array.isArray((options as { decay?: unknown } | undefined)?.decay);
  const opts = checkOptions(
    CONTEXT,
    "options",
    listed ? { ...options, decay: 0 } : options,
    {
      decay: "number",
      chunk: "number",
      normalize: "boolean",
      epsilon: "number",
    } as const,
  );
  const decay = options?.decay;
  if (decay !== undefined) assertDecay(decay, CONTEXT, "options.decay");
  if (opts.chunk !== undefined) assertInteger(opts.chunk, CONTEXT, "options.chunk", 1, MAX_CHUNK);
  const epsilon = opts.epsilon ?? LINEAR_EPSILON;
  assertFinite(epsilon, CONTEXT, "options.epsilon");
  if (epsilon < 0) fail("range", CONTEXT, "options.epsilon", "at least 0", epsilon);
  const phi = featureMap(map);
  return (spec: AttentionSpec) => {
    assertObject(spec, "apply linear()", "spec", "an AttentionSpec from attention()");
    const heads = spec.q?.shape?.[1] ?? 0;
    const normalizer: LinearNormalizer = Object.freeze({
      kind: "linear",
      featureMap: phi,
      ...(decay === undefined ? {} : {
        decay: Object.freeze(
          typeof decay === "number" ? Array.from({ length: heads }, () => decay) : [...decay],
        ),
      }),
      ...(opts.chunk === undefined ? {} : { chunk: opts.chunk }),
      normalize: opts.normalize ?? true,
      epsilon,
    });
    assertLinearNormalizer(normalizer, "apply linear()", { heads });
    return Object.freeze({ ...spec, normalizer });
  };
}
