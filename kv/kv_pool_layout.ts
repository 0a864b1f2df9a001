/**
 * The geometry of a paged KV pool.
 * @module
 */
import { assertInteger, assertOneOf, checkOptions, MAX_SIZE } from "../core/_check.ts";
import { type DType, DTYPES } from "../core/tensor_desc.ts";

/** Options of {@linkcode kvPoolLayout}. */
export interface KvPoolLayoutOptions {
  /** Blocks in the pool (per layer). */
  numBlocks: number;
  /** Token slots per block: any positive integer (1, 8, 16, 24, …). */
  blockSize: number;
  /** KV heads per token. */
  kvHeads: number;
  /** Elements per head. */
  headDim: number;
  /** Storage type, default `"f32"`. */
  dtype?: DType;
  /** Layers, each with its own pool of this geometry sharing the block ids; default 1. */
  layers?: number;
}

/** A checked, frozen pool geometry: K and V each `[numBlocks, blockSize, kvHeads, headDim]`. */
export interface KvPoolLayout {
  /** Blocks in the pool (per layer). */
  readonly numBlocks: number;
  /** Token slots per block. */
  readonly blockSize: number;
  /** KV heads per token. */
  readonly kvHeads: number;
  /** Elements per head. */
  readonly headDim: number;
  /** Storage type. */
  readonly dtype: DType;
  /** Layers sharing the block ids. */
  readonly layers: number;
  /** Bytes of one token's K, or V, in one layer: `kvHeads * headDim * (2 | 4)`. */
  readonly tokenBytes: number;
  /** Bytes of one block over all layers, K and V: `2 * layers * blockSize * tokenBytes`. */
  readonly blockBytes: number;
}

const KEYS = {
  numBlocks: "number",
  blockSize: "number",
  kvHeads: "number",
  headDim: "number",
  dtype: "string",
  layers: "number",
} as const;

/**
 * Checks and freezes a pool geometry.
 *
 * @param options Pool sizes; see {@linkcode KvPoolLayoutOptions}.
 * @returns The frozen layout with its byte sizes.
 * @throws {TypeError} For a non-object, an unknown key, a non-number size or an unknown dtype.
 * @throws {RangeError} If a size is not a positive integer (at most 2^30; the pool's slots,
 * `numBlocks * blockSize`, too, so a slot fits an Int32Array).
 * @example
 * ```ts
 * import { kvPoolLayout } from "@attend/attend/kv";
 * import { assertEquals } from "@std/assert";
 * const layout = kvPoolLayout({ numBlocks: 64, blockSize: 16, kvHeads: 8, headDim: 128, dtype: "f16" });
 * assertEquals(layout.blockBytes, 2 * 16 * 8 * 128 * 2);
 * ```
 */
export function kvPoolLayout(options: KvPoolLayoutOptions): KvPoolLayout {
  const context = "create KV pool layout";
  const o = checkOptions(context, "options", options, KEYS);
  for (const field of ["numBlocks", "blockSize", "kvHeads", "headDim"] as const) {
    assertInteger(o[field], context, field, 1, MAX_SIZE);
  }
  const { numBlocks, blockSize, kvHeads, headDim } = o as KvPoolLayoutOptions;
  const dtype = o.dtype ?? "f32";
  assertOneOf(dtype, DTYPES, context, "dtype");
  const layers = o.layers ?? 1;
  assertInteger(layers, context, "layers", 1, MAX_SIZE);
  assertInteger(numBlocks * blockSize, context, "numBlocks * blockSize", 1, MAX_SIZE);
  const tokenBytes = kvHeads * headDim * (dtype === "f16" ? 2 : 4);
  const blockBytes = 2 * layers * blockSize * tokenBytes;
  return Object.freeze({
    numBlocks,
    blockSize,
    kvHeads,
    headDim,
    dtype,
    layers,
    tokenBytes,
    blockBytes,
  });
}
