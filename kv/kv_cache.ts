/**
 * The paged KV cache with storage: a {@linkcode PageTable} plus one K and one V pool per layer on
 * a backend, running each of the table's plans (block copies, page-store loads, token writes,
 * saves) through the Backend interface (`scatterRows`, `gatherRows`, `read`). With a page store,
 * full prefix blocks are persisted as they fill and reused by any cache with the same geometry
 * and salt, in this process or another (Deno KV).
 * @module
 */
import type { Backend, PagedBatch, Tensor } from "../backends/backend.ts";
import { fail } from "../core/_check.ts";
import { reshape, type TensorDesc } from "../core/tensor_desc.ts";
import { assertKvRows } from "./assert_kv_rows.ts";
import type { KvPoolLayout } from "./kv_pool_layout.ts";
import type { PageStore } from "./page_store.ts";
import { PageTable, type PageTableOptions } from "./page_table.ts";
import type { AppendPlan, BlockLoad, SeqId } from "./plans.ts";
import { prefixHashes } from "./prefix_hashes.ts";
import { NO_BLOCK } from "./plans.ts";

/** Options of {@linkcode KvCache}: the table's geometry and policy, and an optional store. */
export interface KvCacheOptions extends PageTableOptions {
  /** Where swapped sequences and persisted prefix blocks go (default: none; swap then throws). */
  store?: PageStore;
}

/** One layer's pools, `[numBlocks, blockSize, kvHeads, headDim]` each. */
export interface LayerPools {
  /** Key pool. */
  readonly k: Tensor;
  /** Value pool. */
  readonly v: Tensor;
}

/** New keys and values of one layer: `[1, kvHeads, tokens, headDim]` each, any strides. */
export interface KvRows {
  /** Keys. */
  readonly k: Tensor;
  /** Values. */
  readonly v: Tensor;
}

const elementsOf = (layout: KvPoolLayout) => layout.blockSize * layout.kvHeads * layout.headDim;

/**
 * A paged KV cache on a backend (vLLM's block manager with its storage). Sequences append tokens
 * and their K/V; forks share blocks; full blocks are shared by prefix (and persisted to the
 * store); `batch()` gives the block tables a paged run reads (see `pagedAttend`).
 *
 * @example
 * ```ts
 * import { createBackend } from "@attend/attend";
 * import { KvCache } from "@attend/attend/kv";
 * import { assertEquals } from "@std/assert";
 * const backend = await createBackend("cpu");
 * const cache = new KvCache(backend, { numBlocks: 8, blockSize: 2, kvHeads: 1, headDim: 4 });
 * const seq = cache.create();
 * const rows = (n: number) => backend.tensor(new Float32Array(4 * n).fill(1), [1, 1, n, 4]);
 * await cache.append(seq, [5, 6, 7], [{ k: rows(3), v: rows(3) }]);
 * assertEquals([...cache.batch([seq]).lengths], [3]);
 * cache.dispose();
 * ```
 */
export class KvCache {
  /** The backend holding the pools. */
  readonly backend: Backend;
  /** The bookkeeping: block tables, reference counts, prefix cache. */
  readonly table: PageTable;
  /** The pools' geometry. */
  readonly layout: KvPoolLayout;
  readonly #pools: LayerPools[];
  readonly #store?: PageStore;
  readonly #salt: string;
  readonly #caching: boolean;

  /**
   * Allocates the pools (zeros) on `backend`.
   *
   * @param backend The backend.
   * @param options Pool geometry, policy and store.
   * @throws {TypeError} / {RangeError} For bad options, naming the field.
   */
  constructor(backend: Backend, options: KvCacheOptions) {
    const { store, ...tableOptions } = options ?? {} as KvCacheOptions;
    this.table = new PageTable(tableOptions);
    this.backend = backend;
    this.layout = this.table.layout;
    this.#store = store;
    this.#salt = tableOptions.salt ?? "";
    this.#caching = tableOptions.prefixCaching ?? true;
    const { numBlocks, blockSize, kvHeads, headDim, dtype, layers } = this.layout;
    const shape = [numBlocks, blockSize, kvHeads, headDim];
    const zeros = new Float32Array(numBlocks * elementsOf(this.layout));
    this.#pools = Array.from({ length: layers }, () => ({
      k: backend.tensor(zeros, shape, dtype),
      v: backend.tensor(zeros, shape, dtype),
    }));
  }

  /** Layer `layer`'s pools, for a paged spec (`page()`) and its runs. */
  pools(layer = 0): LayerPools {
    const pools = this.#pools[layer];
    if (!pools) fail("range", "read KV pools", "layer", `in 0..${this.#pools.length - 1}`, layer);
    return pools;
  }

  /** A new empty sequence. */
  create(): SeqId {
    return this.table.create();
  }

  /** A sequence sharing every block of `parent` (copy-on-write). */
  fork(parent: SeqId): SeqId {
    return this.table.fork(parent);
  }

  /** Ends a sequence; its swap entries leave the store. */
  async free(seq: SeqId): Promise<void> {
    const dropped = this.table.free(seq);
    if (this.#store) { for (const key of dropped) await this.#store.delete(key); }
  }

  /**
   * Reserves slots for `tokens`: reuses cached prefix blocks (from the pool, or loaded from the
   * store), copies a shared partial block, and returns the plan whose `slots` the new tokens'
   * K/V go to (`write`), from `tokens[plan.cached]` on.
   */
  async reserve(seq: SeqId, tokens: ArrayLike<number>): Promise<AppendPlan> {
    const stored = await this.#storedPrefixes(seq, tokens);
    const plan = this.table.append(seq, tokens, stored ? { stored } : undefined);
    await this.#copyBlocks(plan.copies.map((c) => c.from), plan.copies.map((c) => c.to));
    await this.#load(plan.loads);
    return plan;
  }

  /**
   * Writes one layer's K/V of the tokens a plan reserved (`tokens[plan.cached..]`).
   *
   * @throws {TypeError} / {RangeError} For rows of the wrong shape or dtype, before any write.
   */
  async write(plan: AppendPlan, layer: number, rows: KvRows): Promise<void> {
    const pools = this.pools(layer);
    assertKvRows(this.layout, rows.k, rows.v, plan.slots.length, "write to KV cache");
    for (const role of ["k", "v"] as const) {
      await this.backend.scatterRows(tokenRows(pools[role]), plan.slots, tokenView(rows[role]));
    }
  }

  /** Saves the prefix blocks a plan filled to the store (after its writes), if there is one. */
  async persist(plan: AppendPlan): Promise<void> {
    if (!this.#store || plan.filled.length === 0) return;
    const bytes = await this.#blockBytes(plan.filled.map((f) => f.block));
    for (const [i, f] of plan.filled.entries()) await this.#store.put(f.key, bytes[i]);
  }

  /**
   * Appends tokens with every layer's K/V for all of them (rows already cached are skipped):
   * `reserve`, `write` per layer, `persist`.
   *
   * @param layers Per layer, `[1, kvHeads, tokens.length, headDim]` keys and values.
   * @returns The append's plan.
   */
  async append(
    seq: SeqId,
    tokens: ArrayLike<number>,
    layers: readonly KvRows[],
  ): Promise<AppendPlan> {
    if (!Array.isArray(layers) || layers.length !== this.layout.layers) {
      fail("range", "append to KV cache", "layers.length", `${this.layout.layers}`, layers?.length);
    }
    layers.forEach((l, i) =>
      assertKvRows(this.layout, l.k, l.v, tokens.length, `append to KV cache (layer ${i})`)
    );
    const plan = await this.reserve(seq, tokens);
    for (const [layer, l] of layers.entries()) {
      await this.write(plan, layer, {
        k: skipRows(l.k, plan.cached),
        v: skipRows(l.v, plan.cached),
      });
    }
    await this.persist(plan);
    return plan;
  }

  /** Moves a sequence's blocks to the store and frees them in the pool. */
  async swapOut(seq: SeqId): Promise<void> {
    const store = this.#needStore("swap out sequence");
    const plan = this.table.swapOut(seq);
    const bytes = await this.#blockBytes(plan.saves.map((s) => s.block));
    for (const [i, s] of plan.saves.entries()) await store.put(s.key, bytes[i]);
  }

  /** Brings a swapped-out sequence back; its results are bit-identical to before. */
  async swapIn(seq: SeqId): Promise<void> {
    const store = this.#needStore("swap in sequence");
    const plan = this.table.swapIn(seq);
    await this.#load(plan.loads);
    for (const key of plan.drop) await store.delete(key);
  }

  /**
   * The block tables and lengths of resident sequences for a paged run, `maxBlocks` columns
   * (default: the longest table) padded with -1.
   */
  batch(seqs: readonly SeqId[], maxBlocks?: number): PagedBatch & { maxBlocks: number } {
    const own = this.table.batchTables(seqs);
    const width = maxBlocks ?? own.maxBlocks;
    if (!Number.isInteger(width) || width < own.maxBlocks) {
      fail(
        "range",
        "read block tables",
        "maxBlocks",
        `an integer of at least ${own.maxBlocks}`,
        width,
      );
    }
    const tables = new Int32Array(seqs.length * width).fill(NO_BLOCK);
    for (let s = 0; s < seqs.length; s++) {
      tables.set(own.tables.subarray(s * own.maxBlocks, (s + 1) * own.maxBlocks), s * width);
    }
    return { tables, lengths: own.lengths, maxBlocks: width };
  }

  /** Releases the pools; the cache is unusable afterwards. */
  dispose(): void {
    for (const { k, v } of this.#pools) this.backend.release(k), this.backend.release(v);
  }

  #needStore(context: string): PageStore {
    if (!this.#store) {
      fail("type", context, "options.store", "a PageStore given at creation", undefined);
    }
    return this.#store;
  }

  /** The prefix hashes of the append's new full blocks that the store holds. */
  async #storedPrefixes(seq: SeqId, tokens: ArrayLike<number>): Promise<Set<string> | undefined> {
    if (!this.#store || !this.#caching) return undefined;
    const before = this.table.tokens(seq);
    const all = [...before, ...Array.from(tokens)];
    const hashes = prefixHashes(all, { blockSize: this.layout.blockSize, salt: this.#salt })
      .slice(Math.floor(before.length / this.layout.blockSize));
    const stored = new Set<string>();
    for (const hash of hashes) {
      if (!await this.#store.has(`prefix/${hash}`)) break;
      stored.add(hash);
    }
    return stored;
  }

  async #copyBlocks(from: readonly number[], to: readonly number[]): Promise<void> {
    if (from.length === 0) return;
    for (const pools of this.#pools) {
      for (const pool of [pools.k, pools.v]) {
        const rows = blockRows(pool);
        const copied = await this.backend.gatherRows(rows, Int32Array.from(from));
        try {
          await this.backend.scatterRows(rows, Int32Array.from(to), copied);
        } finally {
          this.backend.release(copied);
        }
      }
    }
  }

  /** Each block's bytes: per layer, its K slots then its V slots, in the pool's dtype. */
  async #blockBytes(blocks: readonly number[]): Promise<Uint8Array[]> {
    const n = elementsOf(this.layout), f16 = this.layout.dtype === "f16";
    const out = blocks.map(() => new Uint8Array(this.layout.blockBytes));
    const part = n * (f16 ? 2 : 4);
    for (const [layer, pools] of this.#pools.entries()) {
      for (const [r, pool] of [pools.k, pools.v].entries()) {
        const gathered = await this.backend.gatherRows(blockRows(pool), Int32Array.from(blocks));
        const values = await this.backend.read(gathered);
        this.backend.release(gathered);
        const typed = f16 ? new Float16Array(values) : values;
        const raw = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
        blocks.forEach((_, i) =>
          out[i].set(raw.subarray(i * part, (i + 1) * part), (2 * layer + r) * part)
        );
      }
    }
    return out;
  }

  async #load(loads: readonly BlockLoad[]): Promise<void> {
    if (loads.length === 0) return;
    const store = this.#needStore("load KV blocks");
    const n = elementsOf(this.layout), f16 = this.layout.dtype === "f16";
    const part = n * (f16 ? 2 : 4);
    const payloads = [];
    for (const load of loads) {
      const bytes = await store.get(load.key);
      if (!bytes || bytes.length !== this.layout.blockBytes) {
        fail(
          "range",
          "load KV blocks",
          `store entry ${load.key}`,
          `${this.layout.blockBytes} bytes`,
          bytes?.length,
        );
      }
      payloads.push(bytes);
    }
    const blocks = Int32Array.from(loads, (l) => l.block);
    for (const [layer, pools] of this.#pools.entries()) {
      for (const [r, pool] of [pools.k, pools.v].entries()) {
        const values = new Float32Array(loads.length * n);
        payloads.forEach((bytes, i) => {
          const slice = bytes.slice((2 * layer + r) * part, (2 * layer + r + 1) * part);
          values.set(f16 ? new Float16Array(slice.buffer) : new Float32Array(slice.buffer), i * n);
        });
        const staged = this.backend.tensor(values, [loads.length, n], this.layout.dtype);
        try {
          await this.backend.scatterRows(blockRows(pool), blocks, staged);
        } finally {
          this.backend.release(staged);
        }
      }
    }
  }
}

/** A pool as `[numBlocks, blockSize · kvHeads · headDim]`: one row per block. */
function blockRows(pool: Tensor): Tensor {
  const [blocks, ...row] = pool.shape;
  return reshape(pool, [blocks, row.reduce((a, b) => a * b, 1)]);
}

/** A pool as `[numBlocks · blockSize, kvHeads, headDim]`: one row per token slot. */
function tokenRows(pool: Tensor): Tensor {
  const [blocks, slots, heads, dim] = pool.shape;
  return reshape(pool, [blocks * slots, heads, dim]);
}

/** New rows `[1, kvHeads, tokens, headDim]` viewed as `[tokens, kvHeads, headDim]`. */
function tokenView<T extends TensorDesc>(x: T): T {
  const [, heads, tokens, dim] = x.shape;
  const [, sh, sn, sd] = x.strides;
  return Object.freeze({ ...x, shape: [tokens, heads, dim], strides: [sn, sh, sd] });
}

/** Rows `[1, kvHeads, tokens, headDim]` without their first `count` tokens. */
function skipRows<T extends TensorDesc>(x: T, count: number): T {
  if (count === 0) return x;
  const [b, heads, tokens, dim] = x.shape;
  return Object.freeze({
    ...x,
    shape: [b, heads, tokens - count, dim],
    offset: x.offset + count * x.strides[2],
  });
}
