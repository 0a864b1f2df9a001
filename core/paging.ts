/**
 * Paged keys and values (vLLM's PagedAttention): a spec whose K and V live in a pool of
 * fixed-size blocks, `[numBlocks, blockSize, Hkv, D]`, which each run reads through per-sequence
 * block tables. The batch is ragged: sequence `s` holds `lengths[s]` keys and asks
 * `queryLengths[s]` queries, its last tokens (bottom-right aligned, as everywhere).
 * @module
 */
import { descOf } from "./_desc.ts";
import { assertInteger, assertObject, fail, MAX_SIZE } from "./_check.ts";
import { assertDesc, type TensorDesc } from "./tensor_desc.ts";
import type { AttentionSpec } from "./spec.ts";

/** Where a paged spec's keys and values live, set by {@linkcode page}. */
export interface Paging {
  /** Token slots per block: the pools' dimension 1. */
  readonly blockSize: number;
  /** Columns of the block tables a run gives: the most blocks one sequence holds. */
  readonly maxBlocks: number;
}

/** The pools of a paged spec: K `[numBlocks, blockSize, Hkv, D]` and V `[…, Dv]`. */
export interface KvPools {
  /** Key pool. */
  readonly k: TensorDesc;
  /** Value pool. */
  readonly v: TensorDesc;
}

/**
 * Checks a paging record.
 *
 * @param paging The value.
 * @param context What the caller cannot do otherwise.
 * @throws {TypeError} / {RangeError} Naming the field and value.
 * @example
 * ```ts
 * import { assertPaging } from "@attend/attend/core";
 * import { assertThrows } from "@std/assert";
 * assertThrows(() => assertPaging({ blockSize: 0, maxBlocks: 4 }), RangeError, "paging.blockSize");
 * ```
 */
export function assertPaging(
  paging: unknown,
  context = "page attention",
): asserts paging is Paging {
  assertObject(paging, context, "paging", "an object { blockSize, maxBlocks }");
  assertInteger(paging.blockSize, context, "paging.blockSize", 1, MAX_SIZE);
  assertInteger(paging.maxBlocks, context, "paging.maxBlocks", 0, MAX_SIZE);
  assertInteger(
    paging.blockSize * paging.maxBlocks,
    context,
    "paging.blockSize * paging.maxBlocks",
    0,
    MAX_SIZE,
  );
}

/**
 * Checks a paged spec's pools against its queries: rank 4, q's dtype, V's blocks, slots and heads
 * equal to K's, the block size the paging's, the KV heads dividing the query heads and K's head
 * dim q's.
 */
export function assertPools(
  context: string,
  q: TensorDesc,
  k: unknown,
  v: unknown,
  paging: Paging,
): asserts k is TensorDesc {
  for (const [name, d] of [["k", k], ["v", v]] as const) {
    assertDesc(d, context, name);
    if (d.shape.length !== 4) {
      fail("range", context, `${name}.shape`, "of rank 4, [numBlocks, blockSize, Hkv, D]", d.shape);
    }
    if (d.dtype !== q.dtype) fail("type", context, `${name}.dtype`, `q's (${q.dtype})`, d.dtype);
  }
  const [kd, vd] = [k as TensorDesc, v as TensorDesc];
  if (kd.shape[1] !== paging.blockSize) {
    fail("range", context, "k.shape[1]", `the block size (${paging.blockSize})`, kd.shape[1]);
  }
  for (const dim of [0, 1, 2]) {
    if (vd.shape[dim] !== kd.shape[dim]) {
      fail("range", context, `v.shape[${dim}]`, `k's (${kd.shape[dim]})`, vd.shape[dim]);
    }
  }
  const kvHeads = kd.shape[2], heads = q.shape[1];
  if (kvHeads === 0 ? heads !== 0 : heads % kvHeads !== 0) {
    fail("range", context, "k.shape[2] (KV heads)", `a divisor of q heads (${heads})`, kvHeads);
  }
  if (kd.shape[3] !== q.shape[3]) {
    fail("range", context, "k.shape[3]", `q's head dim (${q.shape[3]})`, kd.shape[3]);
  }
}

/**
 * Moves a spec's keys and values into a paged pool: the spec's own `k` and `v` give the logical
 * shape, `[B, Hkv, capacity, D]`, and the pools replace them. Each sequence `s` of the batch
 * then reads its `lengths[s] <= maxBlocks · blockSize` keys through row `s` of the block tables
 * given at run (`RunInputs.pages`), `maxBlocks = ceil(capacity / blockSize)` columns of block ids,
 * key `j` in slot `j % blockSize` of block `tables[s][floor(j / blockSize)]`. A block id of `-1`
 * (a block a sliding window released) hides its keys. Query row `i < queryLengths[s]` sits at
 * position `lengths[s] - queryLengths[s] + i`; masks and score modifiers see `qLen` and `kvLen`
 * as that sequence's; rows past its query length give zeros and `lse = -Infinity`.
 *
 * @param pools K `[numBlocks, blockSize, Hkv, D]` and V `[numBlocks, blockSize, Hkv, Dv]`
 * descriptors (or tensors), in q's dtype.
 * @returns The transform; it throws for a spec already paged or pools that do not fit it.
 * @throws {TypeError} If `pools` is not `{ k, v }` of descriptors.
 * @throws {RangeError} For pools of the wrong rank or with mismatched sizes.
 * @example
 * ```ts
 * import { attention, page, specSizes, tensorDesc } from "@attend/attend/core";
 * const q = tensorDesc([3, 8, 1, 64]); // 3 sequences decoding one token each
 * const logical = tensorDesc([3, 2, 4096, 64]); // up to 4096 keys each, 2 KV heads
 * const pool = tensorDesc([512, 16, 2, 64]); // 512 blocks of 16 slots
 * const spec = page({ k: pool, v: pool })(attention(q, logical, logical));
 * if (spec.paging?.maxBlocks !== 256) throw new Error("4096 / 16 columns");
 * if (specSizes(spec).kvLen !== 4096) throw new Error("capacity");
 * ```
 */
export function page(pools: KvPools): (spec: AttentionSpec) => AttentionSpec {
  const context = "page attention";
  assertObject(pools, context, "pools", "an object { k, v } of pool descriptors");
  for (const name of ["k", "v"] as const) assertDesc(pools[name], context, `pools.${name}`);
  const [k, v] = [descOf(pools.k), descOf(pools.v)];
  return (spec) => {
    assertObject(spec, context, "spec", "an AttentionSpec from attention()");
    if (spec.paging !== undefined) fail("type", context, "spec.paging", "absent", spec.paging);
    const blockSize = k.shape[1];
    const paging = Object.freeze({
      blockSize,
      maxBlocks: blockSize > 0 ? Math.ceil(spec.k.shape[2] / blockSize) : 0,
    });
    assertPaging(paging, context);
    assertPools(context, spec.q, k, v, paging);
    if (k.shape[2] !== spec.k.shape[1]) {
      fail("range", context, "pools.k.shape[2]", `spec k's heads (${spec.k.shape[1]})`, k.shape[2]);
    }
    if (v.shape[3] !== spec.v.shape[3]) {
      fail("range", context, "pools.v.shape[3]", `spec v's dim (${spec.v.shape[3]})`, v.shape[3]);
    }
    return Object.freeze({ ...spec, k, v, paging });
  };
}
