/**
 * Linear attention as plain data: the normalizer `linear()` puts on a spec (feature map, decay,
 * chunk, `normalize`, ε), its checks, the recurrent state's shape, and the counts its cost model
 * reads. The transform itself is `linear()` in `variants/`.
 * @module
 */
import { add, exp, type Expr, gt, max, score, select } from "./expr.ts";
import { assertExpr, headParams, readsVar } from "./expr_tree.ts";
import type { SpecSizes } from "./spec.ts";
import { assertArray, assertFinite, assertInteger, assertObject, fail, show } from "./_check.ts";

/**
 * Performer's positive random features (FAVOR+): `φ(x) = exp(W·x' − |x'|²/2) / √m` with
 * `x' = x·√scale` and `W` an `m × D` Gaussian matrix drawn from `seed` (`performerMatrix()`).
 */
export interface PerformerFeatures {
  /** Tag. */
  readonly kind: "performer";
  /** Random features `m`. */
  readonly features: number;
  /** Seed of `W`: the same seed gives the same matrix on every backend. */
  readonly seed: number;
  /** Whether `W`'s rows are orthogonal in blocks of `D` (lower variance). */
  readonly orthogonal: boolean;
}

/**
 * A feature map φ, applied to each query and key row:
 * - `elu`: `elu(x) + 1` elementwise (Katharopoulos et al.), positive;
 * - `relu`: `max(x, 0)` elementwise;
 * - `identity`: `x` (no map);
 * - `expr`: a float Expr over `score`, read as the input element, applied elementwise;
 * - `performer`: positive random features (see `PerformerFeatures`).
 */
export type FeatureMap =
  | { readonly kind: "elu" }
  | { readonly kind: "relu" }
  | { readonly kind: "identity" }
  | { readonly kind: "expr"; readonly expr: Expr }
  | PerformerFeatures;

/**
 * The linear normalizer. With `φ` the feature map, query `i` at position `p = Nk − Nq + i`, and
 * `γ` the head's decay (1 when absent):
 * `out_i = φ(q_i)ᵀ S_i / (φ(q_i)ᵀ z_i + ε)`, `S_i = Σ_j γ^(p−j) φ(k_j) v_jᵀ`,
 * `z_i = Σ_j γ^(p−j) φ(k_j)`, over every key (non-causal) or `j ≤ p` (causal). Without
 * `normalize`, `out_i = φ(q_i)ᵀ S_i` (RetNet-style retention).
 */
export interface LinearNormalizer {
  /** Tag. */
  readonly kind: "linear";
  /** The feature map φ. */
  readonly featureMap: FeatureMap;
  /** Decay γ per query head, each in (0, 1]; causal plans only. Absent: no decay. */
  readonly decay?: readonly number[];
  /** Keys per chunk of the causal chunked form; `lower()` chooses when absent. */
  readonly chunk?: number;
  /** Whether to divide by `φ(q)ᵀ z + ε`. */
  readonly normalize: boolean;
  /** ε added to the denominator. */
  readonly epsilon: number;
}

/** The most random features or keys per chunk. */
export const MAX_FEATURES = 2 ** 16;
/** The most keys per chunk. */
export const MAX_CHUNK = 1024;
/** The default ε. */
export const LINEAR_EPSILON = 1e-6;

const NAMED = ["elu", "relu", "identity"] as const;
const INDEX_VARS = ["b", "h", "qIdx", "kvIdx", "qLen", "kvLen"] as const;

/**
 * Checks a custom feature map: a numeric Expr that reads only `score` (the input element).
 *
 * @param expr The value.
 * @param context What the caller cannot do otherwise.
 * @param field How the caller names it.
 * @throws {TypeError} If it is not a numeric Expr, or reads an index variable or a head
 * parameter, naming the field.
 */
export function assertFeatureExpr(expr: unknown, context: string, field: string): void {
  assertExpr(expr, context, field, "modifier");
  for (const name of INDEX_VARS) {
    if (readsVar(expr, name)) {
      throw new TypeError(
        `Cannot ${context}: ${field} must read only score (an elementwise map), current ${field} reads ${name}`,
      );
    }
  }
  if (headParams(expr).length > 0) {
    throw new TypeError(
      `Cannot ${context}: ${field} must read only score (an elementwise map), current ${field} reads a headParam`,
    );
  }
}

/**
 * Checks Performer feature options: `features` in 1..65536, `seed` a 32-bit integer,
 * `orthogonal` a boolean.
 *
 * @param value The value.
 * @param context What the caller cannot do otherwise.
 * @param field How the caller names it.
 * @throws {TypeError} / {RangeError} Naming the field and value.
 */
export function assertPerformer(value: unknown, context: string, field: string): void {
  assertObject(value, context, field, "an object from performer()");
  assertInteger(value.features, context, `${field}.features`, 1, MAX_FEATURES);
  assertInteger(value.seed, context, `${field}.seed`, -(2 ** 31), 2 ** 32 - 1);
  if (typeof value.orthogonal !== "boolean") {
    fail("type", context, `${field}.orthogonal`, "a boolean", value.orthogonal);
  }
}

/**
 * Checks a feature map as the spec holds it.
 *
 * @param value The value.
 * @param context What the caller cannot do otherwise.
 * @param field How the caller names it.
 * @throws {TypeError} / {RangeError} Naming the field and value.
 */
export function assertFeatureMap(value: unknown, context: string, field: string): void {
  assertObject(value, context, field, "a feature map { kind, … }");
  const kinds = [...NAMED, "expr", "performer"];
  if (!kinds.includes(value.kind as string)) {
    fail(
      "type",
      context,
      `${field}.kind`,
      `one of ${kinds.map((k) => show(k)).join(", ")}`,
      value.kind,
    );
  }
  if (value.kind === "expr") assertFeatureExpr(value.expr, context, `${field}.expr`);
  if (value.kind === "performer") assertPerformer(value, context, field);
}

/**
 * Checks a decay value or list: each in (0, 1].
 *
 * @param value One decay or one per query head.
 * @param context What the caller cannot do otherwise.
 * @param field How the caller names it.
 * @throws {TypeError} If it is neither a number nor an array of numbers.
 * @throws {RangeError} If a decay is outside (0, 1] or the list is empty.
 */
export function assertDecay(value: unknown, context: string, field: string): void {
  const values = Array.isArray(value) ? value : [value];
  if (Array.isArray(value) && value.length === 0) fail("range", context, field, "non-empty", value);
  values.forEach((g, i) => {
    const name = Array.isArray(value) ? `${field}[${i}]` : field;
    if (typeof g !== "number") fail("type", context, name, "a number in (0, 1]", g);
    if (!(g > 0 && g <= 1)) fail("range", context, name, "a number in (0, 1]", g);
  });
}

/**
 * Checks a linear normalizer as `linear()` builds it; with `sizes`, also that `decay` holds one
 * value per query head.
 *
 * @param value The value.
 * @param context What the caller cannot do otherwise.
 * @param sizes The spec's sizes, when known.
 * @throws {TypeError} / {RangeError} Naming the field and value.
 * @example
 * ```ts
 * import { assertLinearNormalizer } from "@attend/attend/core";
 * import { assertThrows } from "@std/assert";
 * const elu = { kind: "linear", featureMap: { kind: "elu" }, normalize: true, epsilon: 1e-6 };
 * assertLinearNormalizer(elu, "check");
 * assertThrows(
 *   () => assertLinearNormalizer({ ...elu, decay: [0] }, "check"),
 *   RangeError,
 *   "normalizer.decay[0] must be a number in (0, 1]",
 * );
 * ```
 */
export function assertLinearNormalizer(
  value: unknown,
  context: string,
  sizes?: Pick<SpecSizes, "heads">,
): asserts value is LinearNormalizer {
  assertObject(value, context, "normalizer", '"softmax" or a linear normalizer from linear()');
  if (value.kind !== "linear") fail("type", context, "normalizer.kind", '"linear"', value.kind);
  assertFeatureMap(value.featureMap, context, "normalizer.featureMap");
  if (value.decay !== undefined) {
    assertArray(value.decay, context, "normalizer.decay", "an array of numbers");
    assertDecay(value.decay, context, "normalizer.decay");
    if (sizes && value.decay.length !== sizes.heads) {
      fail(
        "range",
        context,
        "normalizer.decay.length",
        `q heads (${sizes.heads})`,
        value.decay.length,
      );
    }
  }
  if (value.chunk !== undefined) {
    assertInteger(value.chunk, context, "normalizer.chunk", 1, MAX_CHUNK);
  }
  if (typeof value.normalize !== "boolean") {
    fail("type", context, "normalizer.normalize", "a boolean", value.normalize);
  }
  assertFinite(value.epsilon, context, "normalizer.epsilon");
  if (value.epsilon < 0) fail("range", context, "normalizer.epsilon", "at least 0", value.epsilon);
}

/**
 * Features per row a map gives for a head dimension: `D` for elementwise maps, `m` for Performer.
 *
 * @param map The feature map.
 * @param headDim The query/key head dimension.
 * @returns The count `F`.
 * @example
 * ```ts
 * import { featureCount } from "@attend/attend/core";
 * if (featureCount({ kind: "elu" }, 64) !== 64) throw new Error("elementwise keeps D");
 * ```
 */
export function featureCount(map: FeatureMap, headDim: number): number {
  return map.kind === "performer" ? map.features : headDim;
}

/**
 * The Expr of an elementwise feature map over `score` (the input element); `undefined` for
 * Performer.
 *
 * @param map The feature map.
 * @returns The Expr, for CPU evaluation or kernel code generation.
 * @example
 * ```ts
 * import { evaluate, featureExpr } from "@attend/attend/core";
 * if (evaluate(featureExpr({ kind: "elu" })!, { score: -1 }) !== Math.exp(-1)) throw new Error();
 * ```
 */
export function featureExpr(map: FeatureMap): Expr | undefined {
  switch (map.kind) {
    case "elu":
      return select(gt(score, 0), add(score, 1), exp(score));
    case "relu":
      return max(score, 0);
    case "identity":
      return score;
    case "expr":
      return map.expr;
    case "performer":
      return undefined;
  }
}

/**
 * Shape of the recurrent state of a linear spec or plan: `[B, Hq, F, Dv + 1]` f32, row `f` holding
 * `S[f, 0..Dv)` and `z[f]` in its last column.
 *
 * @param spec A spec or plan with a linear normalizer.
 * @returns The shape.
 * @throws {TypeError} If the normalizer is not linear.
 * @example
 * ```ts
 * import { attention, linearStateShape, tensorDesc } from "@attend/attend/core";
 * import { linear } from "@attend/attend/variants";
 * const x = tensorDesc([1, 2, 16, 8]);
 * const shape = linearStateShape(linear("elu")(attention(x, x, x)));
 * if (shape.join() !== "1,2,8,9") throw new Error(`got ${shape}`);
 * ```
 */
export function linearStateShape(
  spec: {
    readonly q: { readonly shape: readonly number[] };
    readonly v: { readonly shape: readonly number[] };
    readonly normalizer: unknown;
  },
): number[] {
  const context = "shape linear state";
  assertObject(spec, context, "spec", "a linear spec or plan");
  assertLinearNormalizer(spec.normalizer, context);
  const [batch, heads, , headDim] = spec.q.shape;
  return [batch, heads, featureCount(spec.normalizer.featureMap, headDim), spec.v.shape[3] + 1];
}

/** What one query head computes, for `explain()`. */
export interface LinearCounts {
  /** Feature values computed: `(Nq + Nk)·F`. */
  readonly features: number;
  /** (query, key) pairs scored inside chunks (causal only). */
  readonly intraPairs: number;
  /** Keys folded into the state, and queries read from it. */
  readonly stateRows: number;
}

/**
 * What one query head computes: the cost model of `explain()`.
 *
 * @param qLen Query rows.
 * @param kvLen Keys.
 * @param features `F`.
 * @param chunk Keys per chunk.
 * @param causal Whether the plan is causal.
 * @returns The counts.
 * @example
 * ```ts
 * import { linearCounts } from "@attend/attend/core";
 * // Causal, 4 keys in chunks of 2: each query scores itself and the earlier keys of its chunk.
 * if (linearCounts(4, 4, 8, 2, true).intraPairs !== 1 + 2 + 1 + 2) throw new Error();
 * ```
 */
export function linearCounts(
  qLen: number,
  kvLen: number,
  features: number,
  chunk: number,
  causal: boolean,
): LinearCounts {
  let intraPairs = 0;
  if (causal) {
    for (let i = 0; i < qLen; i++) {
      const p = kvLen - qLen + i;
      if (p >= 0) intraPairs += (p % chunk) + 1;
    }
  }
  return { features: (qLen + kvLen) * features, intraPairs, stateRows: qLen + kvLen };
}
