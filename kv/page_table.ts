/**
 * The paged KV cache's page table.
 * @module
 */
import { assertInteger, checkOptions, fail, MAX_SIZE } from "../core/_check.ts";
import type { TensorDesc } from "../core/tensor_desc.ts";
import { append } from "./_append.ts";
import { assertTokens } from "./_checks.ts";
import { endSeq, startSeq } from "./_sequences.ts";
import { type SeqState, TABLE_STATES, type TableState } from "./_state.ts";
import { liveSeq, newTableState } from "./_table_state.ts";
import { batchTables, tableStats } from "./_table_views.ts";
import { swapIn, swapOut } from "./_swap.ts";
import { assertKvRows } from "./assert_kv_rows.ts";
import type { KvPoolLayout, KvPoolLayoutOptions } from "./kv_pool_layout.ts";
import type {
  AppendPlan,
  BatchTables,
  PageTableStats,
  SeqId,
  SwapInPlan,
  SwapOutPlan,
} from "./plans.ts";

/** Options of {@linkcode PageTable}: the pool's geometry and the cache's policy. */
export interface PageTableOptions extends KvPoolLayoutOptions {
  /** Reuse full blocks whose whole prefix matches (chained hashes, tokens compared); default true. */
  prefixCaching?: boolean;
  /** Salt of the prefix hashes, default `""`: name the model and layout when a store is shared. */
  salt?: string;
  /** Sliding window in tokens (a query sees itself and the `window - 1` keys before it). */
  window?: number;
  /** With a window: the first `sinks` tokens' blocks are never released (StreamingLLM). */
  sinks?: number;
}

/** Options of {@linkcode PageTable.prototype.append}. */
export interface AppendOptions {
  /** The new keys, checked against the pool: `[1, kvHeads, tokens.length, headDim]`, its dtype. */
  k?: TensorDesc;
  /** The new values, checked like `k`. */
  v?: TensorDesc;
  /** Prefix hashes whose blocks a page store holds (see `prefixHashes()`): hits that `loads` bring in. */
  stored?: ReadonlySet<string>;
}

/**
 * A vLLM-style page table over one pool of KV blocks: block allocation with a free list,
 * per-sequence block tables, forks sharing blocks (copy-on-write of a shared partial block),
 * prefix caching with LRU eviction, sliding windows with sinks, and swap to a page store. It is
 * pure bookkeeping: each operation returns a frozen plan (see `plans.ts`) that a storage layer
 * executes through a backend, in the order given. Every operation checks its input and the pool
 * before it changes anything, so a call that throws leaves the table exactly as it was.
 *
 * Sequence ids are integers the table hands out (`create()`, `fork()`), never reused.
 *
 * @example
 * ```ts
 * import { PageTable } from "@attend/attend/kv";
 * import { assertEquals } from "@std/assert";
 * const table = new PageTable({ numBlocks: 8, blockSize: 4, kvHeads: 2, headDim: 16 });
 * const a = table.create();
 * const plan = table.append(a, [5, 6, 7, 8, 9, 10]); // 6 tokens: blocks 0 and 1
 * assertEquals([...plan.slots], [0, 1, 2, 3, 4, 5]);
 * const b = table.fork(a); // shares both blocks
 * const next = table.append(b, [11]); // block 1 is shared and partial: copied first
 * assertEquals(next.copies, [{ from: 1, to: 2 }]);
 * assertEquals([...next.slots], [2 * 4 + 2]);
 * assertEquals([...table.blockTable(b)], [0, 2]);
 * // Another prompt with the same first block reuses it from the prefix cache.
 * const c = table.create();
 * assertEquals(table.append(c, [5, 6, 7, 8, 1]).cached, 4);
 * assertEquals(table.stats().shared, 1); // block 0, held by a, b and c
 * table.free(a), table.free(b), table.free(c);
 * assertEquals(table.stats().used, 0);
 * ```
 */
export class PageTable {
  /** The pool's geometry. */
  readonly layout: KvPoolLayout;
  /** The sliding window in tokens, if any. */
  readonly window: number | undefined;
  /** Sink tokens kept with a window (0 without). */
  readonly sinks: number;
  /** Whether full blocks are shared through the prefix cache. */
  readonly prefixCaching: boolean;
  readonly #s: TableState;

  /**
   * Builds an empty table: every block free.
   *
   * @param options Pool geometry and policy; see {@linkcode PageTableOptions}.
   * @throws {TypeError} For a non-object, an unknown key, or a value of the wrong kind.
   * @throws {RangeError} For sizes that are not positive integers, or `sinks` without `window`.
   */
  constructor(options: PageTableOptions) {
    const { layout, policy, state } = newTableState(options);
    this.layout = layout;
    this.window = policy.window;
    this.sinks = policy.sinks;
    this.prefixCaching = policy.prefixCaching;
    this.#s = state;
    TABLE_STATES.set(this, this.#s);
  }

  /**
   * Starts an empty sequence; it holds no block until its first append.
   *
   * @returns The new sequence's id.
   * @example
   * ```ts
   * import { PageTable } from "@attend/attend/kv";
   * import { assertEquals } from "@std/assert";
   * const table = new PageTable({ numBlocks: 4, blockSize: 8, kvHeads: 1, headDim: 8 });
   * assertEquals([table.create(), table.create()], [0, 1]);
   * ```
   */
  create(): SeqId {
    return startSeq(this.#s);
  }

  /**
   * Appends tokens to a sequence: one token (decode) or many (prefill). At a block boundary, the
   * leading whole blocks found in the prefix cache (or, through `stored`, in a page store) are
   * reused instead of written; a sliding-window table releases the blocks no query of this
   * append or later reads.
   *
   * @param seq A resident sequence.
   * @param tokens Token ids, non-negative integers.
   * @param options `k`/`v` descriptors to check against the pool; `stored` prefix hashes.
   * @returns The plan: copies, loads, then a write of `tokens[cached + i]` to `slots[i]`.
   * @throws {TypeError} For a non-number id or token, a `k`/`v` of another dtype, bad options.
   * @throws {RangeError} For an unknown, freed or swapped-out sequence, a token that is not a
   * non-negative integer, or `k`/`v` of the wrong shape.
   * @throws {OutOfBlocksError} When the pool is exhausted; the table is unchanged.
   * @example
   * ```ts
   * import { PageTable } from "@attend/attend/kv";
   * import { OutOfBlocksError } from "@attend/attend/core";
   * import { assertEquals, assertThrows } from "@std/assert";
   * const table = new PageTable({ numBlocks: 2, blockSize: 3, kvHeads: 1, headDim: 8 });
   * const s = table.create();
   * assertEquals([...table.append(s, [1, 2, 3, 4]).slots], [0, 1, 2, 3]);
   * assertThrows(() => table.append(s, [5, 6, 7]), OutOfBlocksError);
   * assertEquals(table.length(s), 4); // unchanged
   * ```
   */
  append(seq: SeqId, tokens: ArrayLike<number>, options?: AppendOptions): AppendPlan {
    const context = "append to KV cache";
    const record = this.#resident(seq, context, "seq");
    assertTokens(tokens, context);
    const o = checkOptions(context, "options", options, {
      k: "object",
      v: "object",
      stored: "object",
    });
    if (o.k !== undefined || o.v !== undefined) {
      assertKvRows(this.layout, o.k!, o.v!, tokens.length, context);
    }
    if (o.stored !== undefined && !(o.stored instanceof Set)) {
      fail("type", context, "options.stored", "a Set of prefix hashes", o.stored);
    }
    const total = record.tokens.length + tokens.length;
    assertInteger(total, context, "sequence length after the append", 0, MAX_SIZE);
    return append(this.#s, seq, record, tokens, o.stored);
  }

  /**
   * Starts a sequence that shares all of `parent`'s blocks and tokens (beam search, parallel
   * sampling); a later write to a shared partial block copies it first.
   *
   * @param parent A resident sequence.
   * @returns The child's id.
   * @throws {TypeError} / {RangeError} For a non-number, unknown, freed or swapped-out parent.
   * @example
   * ```ts
   * import { PageTable } from "@attend/attend/kv";
   * import { assertEquals } from "@std/assert";
   * const table = new PageTable({ numBlocks: 4, blockSize: 2, kvHeads: 1, headDim: 8 });
   * const a = table.create();
   * table.append(a, [1, 2, 3]);
   * const b = table.fork(a);
   * assertEquals(table.tokens(b), [1, 2, 3]);
   * assertEquals(table.stats().shared, 2);
   * ```
   */
  fork(parent: SeqId): SeqId {
    return startSeq(this.#s, this.#resident(parent, "fork sequence", "parent"));
  }

  /**
   * Ends a sequence: its blocks go back to the free list, or, when cached, to the prefix
   * cache's LRU (its last block first, so tails are evicted before shared heads).
   *
   * @param seq A live sequence, resident or swapped out.
   * @returns The page-store keys nobody needs any more (a swapped-out sequence's `swap/…` keys).
   * @throws {TypeError} / {RangeError} For a non-number, unknown or already freed id.
   * @example
   * ```ts
   * import { PageTable } from "@attend/attend/kv";
   * import { assertEquals } from "@std/assert";
   * const table = new PageTable({ numBlocks: 4, blockSize: 2, kvHeads: 1, headDim: 8 });
   * const s = table.create();
   * table.append(s, [1, 2, 3]);
   * assertEquals(table.free(s), []);
   * assertEquals(table.stats().cached + table.stats().free, 4);
   * ```
   */
  free(seq: SeqId): readonly string[] {
    return endSeq(this.#s, seq, this.#live(seq, "free sequence", "seq"));
  }

  /**
   * Swaps a sequence out: lists a save per block, then releases them. Until `swapIn()`, the
   * sequence can be freed but not read, appended to or forked.
   *
   * @param seq A resident sequence.
   * @returns The saves to run before any later plan's writes.
   * @throws {TypeError} / {RangeError} For a non-number, unknown, freed or swapped-out id.
   * @example
   * ```ts
   * import { PageTable } from "@attend/attend/kv";
   * import { assertEquals } from "@std/assert";
   * const table = new PageTable({ numBlocks: 4, blockSize: 2, kvHeads: 1, headDim: 8, prefixCaching: false });
   * const s = table.create();
   * table.append(s, [1, 2, 3]);
   * const out = table.swapOut(s);
   * assertEquals(out.saves.map((x) => x.block), [0, 1]);
   * assertEquals(table.stats().free, 4);
   * const back = table.swapIn(s);
   * assertEquals(back.loads.map((x) => x.key), out.saves.map((x) => x.key));
   * ```
   */
  swapOut(seq: SeqId): SwapOutPlan {
    return swapOut(this.#s, seq, this.#resident(seq, "swap out sequence", "seq"));
  }

  /**
   * Swaps a sequence back in: blocks still in the prefix cache are shared again, the others
   * allocated and listed as loads. The sequence's tokens, length and hashes are as before.
   *
   * @param seq A swapped-out sequence.
   * @returns The loads to run, and the single-use keys to delete afterwards.
   * @throws {TypeError} / {RangeError} For a non-number, unknown, freed or resident id.
   * @throws {OutOfBlocksError} When the pool is short; the sequence stays swapped out.
   * @example
   * ```ts
   * import { PageTable } from "@attend/attend/kv";
   * import { assertEquals } from "@std/assert";
   * const table = new PageTable({ numBlocks: 4, blockSize: 2, kvHeads: 1, headDim: 8 });
   * const s = table.create();
   * table.append(s, [1, 2, 3]);
   * table.swapOut(s); // block 0 is full and cached: it stays in the pool's LRU
   * const back = table.swapIn(s);
   * assertEquals(back.loads.length, 1); // only the partial block comes from the store
   * assertEquals(back.drop, [back.loads[0].key]);
   * ```
   */
  swapIn(seq: SeqId): SwapInPlan {
    return swapIn(this.#s, seq, liveSeq(this.#s, seq, "swap in sequence", "seq", "swapped"));
  }

  /**
   * Frees up to `count` cached blocks that no table holds, least recently used first. Appends
   * do this on their own when the free list runs out.
   *
   * @param count At most this many; default all.
   * @returns How many were freed.
   * @throws {TypeError} / {RangeError} If `count` is not a non-negative integer.
   * @example
   * ```ts
   * import { PageTable } from "@attend/attend/kv";
   * import { assertEquals } from "@std/assert";
   * const table = new PageTable({ numBlocks: 4, blockSize: 2, kvHeads: 1, headDim: 8 });
   * table.free(table.append(table.create(), [1, 2, 3, 4, 5]).seq);
   * assertEquals(table.evict(), 2);
   * assertEquals(table.stats().free, 4);
   * ```
   */
  evict(count: number = Number.MAX_SAFE_INTEGER): number {
    assertInteger(count, "evict cached blocks", "count", 0);
    return this.#s.pool.evict(count);
  }

  /**
   * A resident sequence's block table: block id per block position, {@linkcode NO_BLOCK} for
   * positions a sliding window released. A fresh copy.
   *
   * @param seq A resident sequence.
   * @returns `ceil(length / blockSize)` block ids.
   * @throws {TypeError} / {RangeError} For a non-number, unknown, freed or swapped-out id.
   * @example
   * ```ts
   * import { NO_BLOCK, PageTable } from "@attend/attend/kv";
   * import { assertEquals } from "@std/assert";
   * const table = new PageTable({ numBlocks: 8, blockSize: 2, kvHeads: 1, headDim: 8, window: 2 });
   * const s = table.create();
   * table.append(s, [1, 2, 3, 4, 5]);
   * table.append(s, [6]); // queries from position 5 on read keys 4 onwards
   * assertEquals([...table.blockTable(s)], [NO_BLOCK, NO_BLOCK, 2]);
   * ```
   */
  blockTable(seq: SeqId): Int32Array {
    return Int32Array.from(this.#resident(seq, "read block table", "seq").blocks);
  }

  /**
   * Several resident sequences' block tables as one `[numSeqs, maxBlocks]` array padded with
   * {@linkcode NO_BLOCK}, and their lengths: what a paged kernel reads.
   *
   * @param seqs Resident sequences, one row each.
   * @returns Tables, their width and the lengths.
   * @throws {TypeError} If `seqs` is not an array; {RangeError} / {TypeError} for a bad id.
   * @example
   * ```ts
   * import { NO_BLOCK, PageTable } from "@attend/attend/kv";
   * import { assertEquals } from "@std/assert";
   * const table = new PageTable({ numBlocks: 8, blockSize: 2, kvHeads: 1, headDim: 8 });
   * const a = table.create(), b = table.create();
   * table.append(a, [1, 2, 3]), table.append(b, [9]);
   * const batch = table.batchTables([a, b]);
   * assertEquals([...batch.tables], [0, 1, 2, NO_BLOCK]);
   * assertEquals([...batch.lengths], [3, 1]);
   * ```
   */
  batchTables(seqs: readonly SeqId[]): BatchTables {
    const context = "read block tables";
    if (!Array.isArray(seqs)) fail("type", context, "seqs", "an array of sequence ids", seqs);
    return batchTables(seqs.map((seq, i) => this.#resident(seq, context, `seqs[${i}]`)));
  }

  /**
   * A live sequence's length in tokens.
   *
   * @param seq A live sequence, resident or swapped out.
   * @returns Tokens appended so far.
   * @throws {TypeError} / {RangeError} For a non-number, unknown or freed id.
   */
  length(seq: SeqId): number {
    return this.#live(seq, "read sequence length", "seq").tokens.length;
  }

  /**
   * A live sequence's token ids.
   *
   * @param seq A live sequence, resident or swapped out.
   * @returns A frozen copy.
   * @throws {TypeError} / {RangeError} For a non-number, unknown or freed id.
   */
  tokens(seq: SeqId): readonly number[] {
    return Object.freeze([...this.#live(seq, "read sequence tokens", "seq").tokens]);
  }

  /** The live sequences' ids, resident and swapped out, oldest first. */
  sequences(): readonly SeqId[] {
    return Object.freeze([...this.#s.seqs.keys()]);
  }

  /**
   * Pool occupancy, in blocks, slots and bytes; O(1).
   *
   * @returns Counts with `used + free + cached === numBlocks`.
   */
  stats(): PageTableStats {
    return tableStats(this.#s, this.layout);
  }

  #live(seq: unknown, context: string, field: string): SeqState {
    return liveSeq(this.#s, seq, context, field, "live");
  }

  #resident(seq: unknown, context: string, field: string): SeqState {
    return liveSeq(this.#s, seq, context, field, "resident");
  }
}
