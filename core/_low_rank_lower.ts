/**
 * What `lower()` does for low-rank (Linformer) attention: the refusals of what cannot apply after
 * projection, the spec the attention kernel runs (keys and values replaced by their `k` projected
 * rows) and the plan that records both.
 * @module
 */
import { UnsupportedSpecError } from "./errors.ts";
import { readsVar } from "./expr_tree.ts";
import type { Expr } from "./expr.ts";
import { hashString } from "./_hash.ts";
import type { AttentionSpec } from "./spec.ts";
import { specSizes } from "./spec.ts";
import { tensorDesc } from "./tensor_desc.ts";
import type { BackendCaps, KernelPlan } from "./kernel_plan.ts";
import { assertLowRank, type LowRank, type LowRankPlan, lowRankRows } from "./low_rank.ts";
import { isCausal } from "./_linear_lower.ts";

function refuse(caps: BackendCaps, field: string, value: unknown): never {
  throw new UnsupportedSpecError(caps.backend, field, value);
}

/** What an Expr reads that a projected key no longer has, if anything. */
function keySide(e: Expr | undefined): string | undefined {
  if (!e) return undefined;
  return ["kvIdx", "kvLen"].find((name) => readsVar(e, name as "kvIdx" | "kvLen"));
}

/**
 * A projected row mixes every key, so what tells keys apart (masks and modifiers reading `kvIdx`
 * or `kvLen`) or lists them (`probs`) cannot apply; nor can the other normalizers.
 */
function refuseWithLowRank(spec: AttentionSpec, caps: BackendCaps): void {
  const maskReads = keySide(spec.mask);
  if (maskReads) {
    const value = isCausal(spec.mask) ? "causal()" : `a mask reading ${maskReads}`;
    refuse(caps, "mask with lowRank() (projected keys have no position)", value);
  }
  const modReads = keySide(spec.scoreMod);
  if (modReads) {
    refuse(
      caps,
      "scoreMod with lowRank() (projected keys have no position)",
      `a modifier reading ${modReads}`,
    );
  }
  const extras = {
    normalizer: spec.normalizer !== "softmax" && "linear()",
    hierarchy: spec.hierarchy && "hierarchical()",
    "outputs.probs": spec.outputs.probs || undefined,
  };
  for (const [field, value] of Object.entries(extras)) {
    if (value) refuse(caps, `${field} with lowRank()`, value);
  }
}

/**
 * Checks a low-rank spec and returns the spec the attention kernel runs: `k` and `v` replaced by
 * contiguous `[B, Hkv, k, D]` and `[B, Hkv, k, Dv]` descriptors of the projected rows.
 */
export function projectedSpec(
  spec: AttentionSpec & { readonly lowRank: LowRank },
  caps: BackendCaps,
  context: string,
): AttentionSpec {
  const sizes = specSizes(spec);
  assertLowRank(spec.lowRank, context, { ...sizes, dtype: spec.q.dtype });
  refuseWithLowRank(spec, caps);
  const rows = lowRankRows(spec.lowRank);
  const { lowRank: _, ...rest } = spec;
  const { batch, kvHeads, headDim, valueDim } = sizes;
  return Object.freeze({
    ...rest,
    k: tensorDesc([batch, kvHeads, rows, headDim], spec.q.dtype),
    v: tensorDesc([batch, kvHeads, rows, valueDim], spec.q.dtype),
  });
}

/** The record's JSON, in a fixed field order (part of the plan's key). */
export function lowRankJson(value: unknown): string {
  if (typeof value !== "object" || value === null) return JSON.stringify(value);
  const { e, f, k, v } = value as LowRankPlan;
  return JSON.stringify({ e, f, k, v });
}

/**
 * The plan of a low-rank spec: the attention plan over the projected rows (`k`, `v` and `sizes`
 * are the projection's, which the kernel reads), with `lowRank` recording the projections and the
 * key and value inputs; its key covers both.
 */
export function lowRankPlan(
  inner: KernelPlan,
  spec: AttentionSpec & { lowRank: LowRank },
): KernelPlan {
  const lowRank: LowRankPlan = Object.freeze({
    e: spec.lowRank.e,
    f: spec.lowRank.f,
    k: spec.k,
    v: spec.v,
  });
  return Object.freeze({
    ...inner,
    lowRank,
    key: hashString(`${inner.key}|lowRank:${lowRankJson(lowRank)}`),
  });
}
