/**
 * The attention spec: frozen data describing one attention computation. Build it with
 * `attention(q, k, v)` and refine it with transforms.
 * @module
 */
import type { Expr } from "./expr.ts";
import { assertDType, type TensorDesc } from "./tensor_desc.ts";

/** Kernel families a plan can use: scores in memory, or tiles with an online softmax. */
export type KernelFamily = "materialized" | "flash";

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
  /** The normalizer; only softmax so far. */
  readonly normalizer: "softmax";
  /** Requested tile shape; the backend chooses when absent. */
  readonly tile?: TileShape;
  /** Requested kernel family; the backend chooses when absent. */
  readonly kernel?: KernelFamily;
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

/** Validates a scale value. */
export function assertScale(scale: number): void {
  if (typeof scale !== "number" || !Number.isFinite(scale)) {
    throw new RangeError(
      `Cannot set scale: scale must be a finite number, current value is ${scale}`,
    );
  }
}

function assertRank4(name: string, d: TensorDesc): void {
  if (!d || !Array.isArray(d.shape) || d.shape.length !== 4) {
    throw new RangeError(
      `Cannot build attention: ${name} must have rank 4 [batch, heads, seq, headDim], current shape is [${
        d?.shape ?? "none"
      }]`,
    );
  }
  assertDType(d.dtype, `${name}.dtype`);
}

function descOf(d: TensorDesc): TensorDesc {
  return Object.freeze({
    dtype: d.dtype,
    shape: Object.freeze([...d.shape]),
    strides: Object.freeze([...d.strides]),
    offset: d.offset,
  });
}

function mismatch(field: string, want: number, got: number, what: string): RangeError {
  return new RangeError(
    `Cannot build attention: ${field} must equal ${what} (${want}), current value is ${got}`,
  );
}

/**
 * Builds the spec of plain softmax attention over `q`, `k`, `v`.
 *
 * @param q Queries `[B, Hq, Nq, D]` (descriptor or tensor; only the descriptor is kept).
 * @param k Keys `[B, Hkv, Nk, D]`; `Hkv` must divide `Hq`.
 * @param v Values `[B, Hkv, Nk, Dv]`.
 * @param options Scale and extra outputs.
 * @returns A frozen spec.
 * @throws {RangeError} For mismatched sizes, naming the field and value.
 * @throws {TypeError} For unknown or mixed dtypes.
 * @example
 * ```ts
 * import { attention, tensorDesc } from "@attend/attend/core";
 * const q = tensorDesc([1, 8, 16, 64]);
 * const kv = tensorDesc([1, 2, 32, 64]);
 * const spec = attention(q, kv, kv);
 * if (spec.scale !== 1 / 8) throw new Error("default scale is 1/sqrt(D)");
 * ```
 */
export function attention(
  q: TensorDesc,
  k: TensorDesc,
  v: TensorDesc,
  options: AttentionOptions = {},
): AttentionSpec {
  assertRank4("q", q);
  assertRank4("k", k);
  assertRank4("v", v);
  for (const [name, d] of [["k", k], ["v", v]] as const) {
    if (d.dtype !== q.dtype) {
      throw new TypeError(
        `Cannot build attention: ${name}.dtype must equal q.dtype (${q.dtype}), current value is ${d.dtype}`,
      );
    }
  }
  const [batch, heads, , headDim] = q.shape;
  if (k.shape[0] !== batch) throw mismatch("k.shape[0]", batch, k.shape[0], "q batch");
  if (v.shape[0] !== batch) throw mismatch("v.shape[0]", batch, v.shape[0], "q batch");
  if (k.shape[3] !== headDim) throw mismatch("k.shape[3]", headDim, k.shape[3], "q head dim");
  if (v.shape[1] !== k.shape[1]) throw mismatch("v.shape[1]", k.shape[1], v.shape[1], "k heads");
  if (v.shape[2] !== k.shape[2]) throw mismatch("v.shape[2]", k.shape[2], v.shape[2], "k length");
  const kvHeads = k.shape[1];
  if (kvHeads === 0 || heads % kvHeads !== 0) {
    throw new RangeError(
      `Cannot build attention: k.shape[1] (KV heads) must divide q heads (${heads}), current value is ${kvHeads}`,
    );
  }
  const scale = options.scale ?? 1 / Math.sqrt(headDim);
  assertScale(scale);
  return Object.freeze({
    q: descOf(q),
    k: descOf(k),
    v: descOf(v),
    scale,
    groupedHeads: false,
    normalizer: "softmax",
    outputs: Object.freeze({ lse: options.lse ?? false, probs: options.probs ?? false }),
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

/** Reads the sizes of a spec. */
export function specSizes(spec: AttentionSpec): SpecSizes {
  const [batch, heads, qLen, headDim] = spec.q.shape;
  const [, kvHeads, kvLen] = spec.k.shape;
  return { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim: spec.v.shape[3] };
}
