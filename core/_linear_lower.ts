/**
 * What `lower()` does for linear attention: the refusals of options it cannot combine with, the
 * chunk size, and the plan's normalizer in canonical form.
 * @module
 */
import { UnsupportedSpecError } from "./errors.ts";
import { exprKey } from "./expr_tree.ts";
import { causal } from "./masks.ts";
import type { AttentionSpec, SpecSizes, TileShape } from "./spec.ts";
import type { BackendCaps } from "./lower.ts";
import { featureCount, type FeatureMap, type LinearNormalizer } from "./linear.ts";
import { assertLinearNormalizer } from "./linear.ts";
import { atMost } from "./_lower_checks.ts";

/** Keys per chunk when none is requested: the intra-chunk products stay small next to the state. */
const DEFAULT_CHUNK = 64;

/** Whether a mask is exactly the causal mask (the only mask linear attention runs). */
export function isCausal(mask: AttentionSpec["mask"]): boolean {
  return mask !== undefined && exprKey(mask) === exprKey(causal());
}

function refuse(caps: BackendCaps, field: string, value: unknown): never {
  throw new UnsupportedSpecError(caps.backend, field, value);
}

/**
 * Linear attention has its own normalization and only two masks (none, or causal): it refuses
 * other masks, score modifiers, sink logits, tiles, hierarchy and per-key outputs.
 */
export function refuseWithLinear(spec: AttentionSpec, caps: BackendCaps): void {
  if (spec.normalizer === "softmax") refuse(caps, "kernel without linear()", "linear");
  if (spec.kernel !== undefined && spec.kernel !== "linear") {
    refuse(caps, "kernel with linear()", spec.kernel);
  }
  const extras = {
    mask: spec.mask && !isCausal(spec.mask) && "a mask other than causal()",
    scoreMod: spec.scoreMod && "a score modifier",
    sinkLogits: spec.sinkLogits && "sink logits",
    hierarchy: spec.hierarchy && "hierarchical()",
    tile: spec.tile && `${spec.tile.q}x${spec.tile.kv}`,
    "outputs.lse": spec.outputs.lse || undefined,
    "outputs.probs": spec.outputs.probs || undefined,
  };
  for (const [field, value] of Object.entries(extras)) {
    if (value) refuse(caps, `${field} with linear()`, value);
  }
  if (spec.normalizer.decay && !isCausal(spec.mask)) {
    refuse(caps, "decay without a causal mask", `[${spec.normalizer.decay}]`);
  }
  if (spec.normalizer.featureMap.kind === "performer" && !(spec.scale > 0)) {
    refuse(caps, "scale (not positive) with performer features", spec.scale);
  }
}

/**
 * Consecutive query heads that share one key-side state (`Σ γ^(p−j) φ(k_j) v_jᵀ`, `z`): it
 * depends only on the keys, values and decay (φ is the same for every head, Performer's matrix
 * included), so a KV head's whole group shares it when the decays are equal within every group;
 * else each query head keeps its own.
 */
export function stateSharers(n: LinearNormalizer, heads: number, kvHeads: number): number {
  const group = kvHeads > 0 ? heads / kvHeads : 1;
  const decay = n.decay;
  return !decay || decay.every((g, h) => g === decay[h - (h % group)]) ? group : 1;
}

/** Checks the normalizer against the sizes; returns the chunk and why. */
export function linearChunk(
  spec: AttentionSpec & { readonly normalizer: LinearNormalizer },
  sizes: SpecSizes,
  context: string,
): { tile: TileShape; reason: string } {
  const n = spec.normalizer;
  assertLinearNormalizer(n, context, sizes);
  const features = featureCount(n.featureMap, sizes.headDim);
  const state = sizes.batch * sizes.heads * features * (sizes.valueDim + 1);
  atMost(context, "state size (B·Hq·F·(Dv+1))", 2 ** 32, "elements, 32-bit indices", state);
  if (n.featureMap.kind === "performer") {
    atMost(
      context,
      "performer features·headDim",
      2 ** 26,
      "matrix entries",
      features * sizes.headDim,
    );
  }
  const chunk = n.chunk ?? Math.min(DEFAULT_CHUNK, Math.max(1, sizes.kvLen));
  const reason = n.chunk !== undefined ? "requested" : `linear: chunks of ${chunk} keys`;
  return { tile: Object.freeze({ q: chunk, kv: chunk }), reason };
}

function canonicalMap(map: FeatureMap): FeatureMap {
  switch (map.kind) {
    case "expr":
      return Object.freeze({ kind: "expr", expr: map.expr });
    case "performer": {
      const { features, seed, orthogonal } = map;
      return Object.freeze({ kind: "performer", features, seed, orthogonal });
    }
    default:
      return Object.freeze({ kind: map.kind });
  }
}

/** The plan's normalizer: fields in a fixed order, the chunk filled in. */
export function planNormalizer(n: LinearNormalizer, chunk: number): LinearNormalizer {
  return Object.freeze({
    kind: "linear",
    featureMap: canonicalMap(n.featureMap),
    ...(n.decay ? { decay: Object.freeze([...n.decay]) } : {}),
    chunk,
    normalize: n.normalize,
    epsilon: n.epsilon,
  });
}

/** A normalizer as `lower()` hashes it: a custom map by its Expr key. */
export function normalizerJson(n: unknown): string {
  if (typeof n !== "object" || n === null) return JSON.stringify(n);
  const map = (n as LinearNormalizer).featureMap;
  if (map?.kind !== "expr") return JSON.stringify(n);
  let key: string;
  try {
    key = exprKey(map.expr);
  } catch {
    key = "invalid";
  }
  return JSON.stringify({ ...n, featureMap: { kind: "expr", expr: key } });
}
