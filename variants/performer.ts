/**
 * Performer's positive random features (FAVOR+), a feature map for `linear()`.
 * @module
 */
import { assertPerformer, type PerformerFeatures } from "../core/linear.ts";
import { checkOptions } from "../core/_check.ts";

/** Options of `performer()`. */
export interface PerformerOptions {
  /** Random features `m`, 1..65536. */
  readonly features: number;
  /** Seed of the random matrix, a 32-bit integer: the same seed gives the same features. */
  readonly seed: number;
  /** Orthogonal rows in blocks of `D` (lower variance). Default: true. */
  readonly orthogonal?: boolean;
}

const CONTEXT = "create performer features";

/**
 * Performer's FAVOR+ feature map: `φ(x) = exp(W·x' − |x'|²/2) / √m` with `x' = x·√scale` and
 * `W` an `m × D` Gaussian matrix drawn in core from `seed` (`performerMatrix()`), identical on
 * every backend. Then `φ(q)·φ(k)` is an unbiased, positive estimate of `exp(q·k·scale)`, so
 * normalized linear attention with it approximates softmax attention, more closely as `m` grows.
 * The exponent is not stabilized: rows with `|x'|` far above 10 may overflow.
 *
 * @param options `{ features, seed, orthogonal? }`.
 * @returns The feature map, for `linear()`.
 * @throws {TypeError} For options of the wrong kind or an unknown key.
 * @throws {RangeError} If `features` is not an integer in 1..65536 or `seed` not a 32-bit integer.
 * @example
 * ```ts
 * import { attention, tensorDesc } from "@attend/attend/core";
 * import { linear, performer } from "@attend/attend/variants";
 * const x = tensorDesc([1, 2, 16, 8]);
 * const spec = linear(performer({ features: 32, seed: 1 }))(attention(x, x, x));
 * if (spec.normalizer === "softmax" || spec.normalizer.featureMap.kind !== "performer") {
 *   throw new Error("performer features");
 * }
 * ```
 */
export function performer(options: PerformerOptions): PerformerFeatures {
  checkOptions(CONTEXT, "options", options, {
    features: "number",
    seed: "number",
    orthogonal: "boolean",
  });
  const map = Object.freeze({
    kind: "performer" as const,
    features: options?.features,
    seed: options?.seed,
    orthogonal: options?.orthogonal ?? true,
  });
  assertPerformer(map, CONTEXT, "options");
  return map;
}
