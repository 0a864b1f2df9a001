/**
 * The attention spec: frozen data describing one attention computation. Build it with
 * `attention(q, k, v)` and refine it with transforms.
 * @module
 */
import { descOf } from "./_desc.ts";
import type { Expr } from "./expr.ts";
import { assertExpr } from "./expr_tree.ts";
import { assertDesc, type TensorDesc } from "./tensor_desc.ts";
import { assertHierarchy, type Hierarchy } from "./hierarchy.ts";
import { assertLinearNormalizer, type LinearNormalizer } from "./linear.ts";
import { assertPaging, assertPools, type Paging } from "./paging.ts";
import { assertLowRank, type LowRank } from "./low_rank.ts";
import {
  assertFinite,
  assertInteger,
  assertObject,
  assertOneOf,
  checkOptions,
  fail,
} from "./_check.ts";

/**
 * Kernel families a plan can use: scores in memory, tiles with an online softmax, hierarchical
 * (compressed-block) attention, or linear attention's running state.
 */
export type KernelFamily = "materialized" | "flash" | "hierarchical" | "linear" | "paged";

/** Query and key rows per tile. */
export interface TileShape {
  /** Query rows per tile. */
  readonly q: number;
  /** Key rows per tile. */
  readonly kv: number;
}

/** Which results a run produces besides `out`. */
export interface Outputs {
  /** Log-sum-exp of each query row's scores, `[B, Hq, Nq]`. */
  readonly lse: boolean;
  /** Attention probabilities `[B, Hq, Nq, Nk]` (materialized kernel only). */
  readonly probs: boolean;
}

/**
 * `out = softmax(scoreMod(q·kᵀ·scale) masked) · v`. `q` is `[B, Hq, Nq, D]`, `k` is
 * `[B, Hkv, Nk, D]`, `v` is `[B, Hkv, Nk, Dv]`, any strides; query head `h` reads KV head
 * `floor(h / (Hq / Hkv))`.
 */
export interface AttentionSpec {
  /** Query descriptor. */
  readonly q: TensorDesc;
  /** Key descriptor. */
  readonly k: TensorDesc;
  /** Value descriptor. */
  readonly v: TensorDesc;
  /** Multiplier of `q·k`. */
  readonly scale: number;
  /** Bool Expr of allowed (query, key) pairs; every pair when absent. */
  readonly mask?: Expr;
  /** Float Expr over `score`; the identity when absent. */
  readonly scoreMod?: Expr;
  /**
   * Whether query heads may share KV heads (GQA/MQA), set by `groupHeads()`. Like PyTorch's
   * `enable_gqa`, a spec with fewer KV heads than query heads is refused by `lower()` without it.
   */
  readonly groupedHeads: boolean;
  /** The normalizer: softmax, or linear attention's feature map (set by `linear()`). */
  readonly normalizer: "softmax" | LinearNormalizer;
  /** Requested tile shape; the backend chooses when absent. */
  readonly tile?: TileShape;
  /** Requested kernel family; the backend chooses when absent. */
  readonly kernel?: KernelFamily;
  /**
   * A learned sink logit per query head (`sinkLogits()`): a virtual key with this score and a
   * zero value that joins every row's softmax denominator.
   */
  readonly sinkLogits?: readonly number[];
  /** Hierarchical attention's branches (set by `hierarchical()`), replacing the plain softmax. */
  readonly hierarchy?: Hierarchy;
  /** Paged keys and values (set by `page()`): `k` and `v` are then the pools. */
  readonly paging?: Paging;
  /** Linformer's key and value projections along the sequence (set by `lowRank()`). */
  readonly lowRank?: LowRank;
  /** Extra results wanted. */
  readonly outputs: Outputs;
}

/** Options of `attention()`. */
export interface AttentionOptions {
  /** Multiplier of `q·k`; `1/sqrt(D)` by default. */
  readonly scale?: number;
  /** Also return the log-sum-exp per query row. */
  readonly lse?: boolean;
  /** Also return the attention probabilities (uses the materialized kernel). */
  readonly probs?: boolean;
}

/**
 * Checks a scale value.
 *
 * @param scale The value.
 * @param context What the caller cannot do otherwise.
 * @throws {TypeError} If it is not a number.
 * @throws {RangeError} If it is NaN or infinite.
 * @example
 * ```ts
 * import { assertScale } from "@attend/attend/core";
 * import { assertThrows } from "@std/assert";
 * assertThrows(() => assertScale(NaN), RangeError, "scale must be a finite number, current value is NaN");
 * ```
 */
export function assertScale(scale: unknown, context = "set scale"): asserts scale is number {
  assertFinite(scale, context, "scale");
}

/**
 * Checks a tile shape: `{ q, kv }`, each an integer in 1..1024.
 *
 * @param shape The value.
 * @param context What the caller cannot do otherwise.
 * @param field How the caller names it.
 * @throws {TypeError} For a non-object, unknown keys or non-number sizes.
 * @throws {RangeError} For sizes out of range.
 * @example
 * ```ts
 * import { assertTile } from "@attend/attend/core";
 * import { assertThrows } from "@std/assert";
 * assertThrows(() => assertTile({ q: 0, kv: 4 }), RangeError, "tile.q must be an integer in 1..1024");
 * ```
 */
export function assertTile(
  shape: unknown,
  context = "set tile",
  field = "tile",
): asserts shape is TileShape {
  assertObject(shape, context, field, "an object { q, kv }");
  checkOptions(context, field, shape, { q: "number", kv: "number" });
  assertInteger(shape.q, context, `${field}.q`, 1, 1024);
  assertInteger(shape.kv, context, `${field}.kv`, 1, 1024);
}

/** The kernel families. */
export const KERNEL_FAMILIES: readonly KernelFamily[] = Object.freeze([
  "materialized",
  "flash",
  "hierarchical",
  "linear",
  "paged",
]);

/**
 * Checks a kernel family.
 *
 * @param family The value.
 * @param context What the caller cannot do otherwise.
 * @param field How the caller names it.
 * @throws {TypeError} If it is not one of `KERNEL_FAMILIES`.
 * @example
 * ```ts
 * import { assertKernelFamily } from "@attend/attend/core";
 * import { assertThrows } from "@std/assert";
 * assertThrows(() => assertKernelFamily("sparse"), TypeError, 'current value is "sparse"');
 * ```
 */
export function assertKernelFamily(
  family: unknown,
  context = "set kernel",
  field = "family",
): asserts family is KernelFamily {
  assertOneOf(family, KERNEL_FAMILIES, context, field);
}

function assertRank4(context: string, name: string, d: unknown): asserts d is TensorDesc {
  assertDesc(d, context, name);
  if (d.shape.length !== 4) {
    throw new RangeError(
      `Cannot ${context}: ${name} must have rank 4 [batch, heads, seq, headDim], current shape is [${d.shape}]`,
    );
  }
}

/** Checks q, k, v: rank-4 descriptors of one dtype whose sizes fit together. */
function assertOperands(context: string, q: unknown, k: unknown, v: unknown): void {
  assertRank4(context, "q", q);
  assertRank4(context, "k", k);
  assertRank4(context, "v", v);
  for (const [name, d] of [["k", k], ["v", v]] as const) {
    if (d.dtype !== q.dtype) {
      throw new TypeError(
        `Cannot ${context}: ${name}.dtype must equal q.dtype (${q.dtype}), current value is ${d.dtype}`,
      );
    }
  }
  const [batch, heads, , headDim] = q.shape;
  const mismatch = (field: string, want: number, got: number, what: string) => {
    if (want !== got) {
      throw new RangeError(
        `Cannot ${context}: ${field} must equal ${what} (${want}), current value is ${got}`,
      );
    }
  };
  mismatch("k.shape[0]", batch, k.shape[0], "q batch");
  mismatch("v.shape[0]", batch, v.shape[0], "q batch");
  mismatch("k.shape[3]", headDim, k.shape[3], "q head dim");
  mismatch("v.shape[1]", k.shape[1], v.shape[1], "k heads");
  mismatch("v.shape[2]", k.shape[2], v.shape[2], "k length");
  const kvHeads = k.shape[1];
  if (kvHeads === 0 ? heads !== 0 : heads % kvHeads !== 0) {
    throw new RangeError(
      `Cannot ${context}: k.shape[1] (KV heads) must divide q heads (${heads}), current value is ${kvHeads}`,
    );
  }
}

const OPTIONS = { scale: "number", lse: "boolean", probs: "boolean" } as const;

/**
 * Builds the spec of plain softmax attention over `q`, `k`, `v`.
 *
 * Sizes may be zero: no keys (`Nk = 0`) gives zeros and `lse = -Infinity`; no batch, heads or
 * queries give empty results; head dim 0 gives scores of 0 (each row the mean of its visible
 * values) and a default scale of 1.
 *
 * Non-finite data: keys a query row cannot see (masked, or past `Nk`) never reach it, whatever
 * their k and v hold. Over the keys it sees the arithmetic is IEEE, as in PyTorch's SDPA:
 * - a NaN or +Infinity score (NaN or Inf in q or a visible k, or from the score modifier) makes
 *   the row NaN: every element of its `out`, its `lse`, and the probabilities of its visible keys
 *   (hidden keys' stay 0);
 * - a score of -Infinity gives its key weight 0, and a row whose visible keys all weigh 0 gives
 *   `out` 0 and `lse = -Infinity`, like a row that sees no key;
 * - a visible key's v always enters as `weight · v`: `out[i][d]` is NaN where a visible
 *   `v[j][d]` is NaN (or infinite with weight 0), and ±Infinity where it is infinite with a
 *   positive weight.
 *
 * @param q Queries `[B, Hq, Nq, D]` (descriptor or tensor; only the descriptor is kept).
 * @param k Keys `[B, Hkv, Nk, D]`; `Hkv` must divide `Hq`.
 * @param v Values `[B, Hkv, Nk, Dv]`.
 * @param options Scale and extra outputs: `{ scale?, lse?, probs? }`.
 * @returns A frozen spec.
 * @throws {RangeError} For mismatched sizes or a non-finite scale, naming the field and value.
 * @throws {TypeError} For non-descriptors, unknown or mixed dtypes, and options that are not an
 * object, name an unknown key (the nearest known key is suggested) or hold a wrong kind.
 * @example
 * ```ts
 * import { attention, tensorDesc } from "@attend/attend/core";
 * import { assertThrows } from "@std/assert";
 * const q = tensorDesc([1, 8, 16, 64]);
 * const kv = tensorDesc([1, 2, 32, 64]);
 * const spec = attention(q, kv, kv);
 * if (spec.scale !== 1 / 8) throw new Error("default scale is 1/sqrt(D)");
 * assertThrows(() => attention(q, kv, kv, { lse: true, prob: true } as never), TypeError, 'did you mean "probs"?');
 * ```
 */
export function attention(
  q: TensorDesc,
  k: TensorDesc,
  v: TensorDesc,
  options?: AttentionOptions,
): AttentionSpec {
  const context = "build attention";
  assertOperands(context, q, k, v);
  const opts = checkOptions(context, "options", options, OPTIONS);
  const headDim = q.shape[3];
  const scale = opts.scale ?? (headDim > 0 ? 1 / Math.sqrt(headDim) : 1);
  assertScale(scale, context);
  return Object.freeze({
    q: descOf(q),
    k: descOf(k),
    v: descOf(v),
    scale,
    groupedHeads: false,
    normalizer: "softmax",
    outputs: Object.freeze({ lse: opts.lse ?? false, probs: opts.probs ?? false }),
  });
}

/**
 * Checks everything a spec holds, as `attention()` and the transforms would have: for specs
 * built or edited by hand, before lowering.
 *
 * @param spec The value.
 * @param context What the caller cannot do otherwise.
 * @throws {TypeError} / {RangeError} Naming the field and value.
 * @example
 * ```ts
 * import { assertSpec, attention, tensorDesc } from "@attend/attend/core";
 * import { assertThrows } from "@std/assert";
 * const x = tensorDesc([1, 1, 4, 8]);
 * assertThrows(() => assertSpec({ ...attention(x, x, x), scale: NaN }), RangeError, "scale");
 * ```
 */
export function assertSpec(
  spec: unknown,
  context = "lower attention",
): asserts spec is AttentionSpec {
  assertObject(spec, context, "spec", "an AttentionSpec from attention()");
  if (spec.paging === undefined) assertOperands(context, spec.q, spec.k, spec.v);
  else {
    assertRank4(context, "q", spec.q);
    assertPaging(spec.paging, context);
    assertPools(context, spec.q, spec.k, spec.v, spec.paging);
  }
  assertScale(spec.scale, context);
  if (spec.mask !== undefined) assertExpr(spec.mask, context, "mask", "mask");
  if (spec.scoreMod !== undefined) assertExpr(spec.scoreMod, context, "scoreMod", "modifier");
  if (typeof spec.groupedHeads !== "boolean") {
    fail("type", context, "groupedHeads", "a boolean", spec.groupedHeads);
  }
  if (spec.normalizer !== "softmax") assertLinearNormalizer(spec.normalizer, context);
  if (spec.tile !== undefined) assertTile(spec.tile, context);
  if (spec.kernel !== undefined) assertKernelFamily(spec.kernel, context, "kernel");
  if (spec.sinkLogits !== undefined) assertSinkLogits(spec.sinkLogits, context);
  if (spec.hierarchy !== undefined) assertHierarchy(spec.hierarchy, context);
  if (spec.lowRank !== undefined) assertLowRank(spec.lowRank, context);
  assertObject(spec.outputs, context, "outputs", "an object { lse, probs }");
  for (const key of ["lse", "probs"] as const) {
    if (typeof spec.outputs[key] !== "boolean") {
      fail("type", context, `outputs.${key}`, "a boolean", spec.outputs[key]);
    }
  }
}

/**
 * Checks sink logits: a non-empty array of finite numbers.
 *
 * @param values The value.
 * @param context What was being done, for the message.
 * @throws {TypeError} If `values` is not an array of numbers.
 * @throws {RangeError} If it is empty or a value is not finite.
 */
export function assertSinkLogits(values: unknown, context: string): void {
  if (!Array.isArray(values)) fail("type", context, "sinkLogits", "an array of numbers", values);
  if (values.length === 0) fail("range", context, "sinkLogits.length", "at least 1", 0);
  values.forEach((v, i) => {
    if (typeof v !== "number") fail("type", context, `sinkLogits[${i}]`, "a number", v);
    if (!Number.isFinite(v)) fail("range", context, `sinkLogits[${i}]`, "finite", v);
  });
}

/** Sizes of a spec, read from its descriptors. */
export interface SpecSizes {
  /** Batch size. */
  readonly batch: number;
  /** Query heads. */
  readonly heads: number;
  /** Key/value heads. */
  readonly kvHeads: number;
  /** Query rows. */
  readonly qLen: number;
  /** Key rows. */
  readonly kvLen: number;
  /** Query/key head dimension. */
  readonly headDim: number;
  /** Value head dimension. */
  readonly valueDim: number;
}

/**
 * Reads the sizes of a spec (or of anything with rank-4 `q`, `k`, `v`).
 *
 * @param spec The spec.
 * @returns Its sizes.
 * @throws {TypeError} / {RangeError} If q, k or v is not a rank-4 descriptor.
 * @example
 * ```ts
 * import { attention, specSizes, tensorDesc } from "@attend/attend/core";
 * const x = tensorDesc([2, 4, 16, 8]);
 * if (specSizes(attention(x, x, x)).qLen !== 16) throw new Error("Nq is 16");
 * ```
 */
export function specSizes(spec: Pick<AttentionSpec, "q" | "k" | "v" | "paging">): SpecSizes {
  assertObject(spec, "read sizes", "spec", "an AttentionSpec");
  for (const role of ["q", "k", "v"] as const) assertRank4("read sizes", role, spec[role]);
  const [batch, heads, qLen, headDim] = spec.q.shape;
  const valueDim = spec.v.shape[3];
  if (spec.paging) {
    // The pools hold [numBlocks, blockSize, Hkv, D]; a sequence holds at most the table's keys.
    const kvLen = spec.paging.maxBlocks * spec.paging.blockSize;
    return { batch, heads, kvHeads: spec.k.shape[2], qLen, kvLen, headDim, valueDim };
  }
  const [, kvHeads, kvLen] = spec.k.shape;
  return { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim };
}
