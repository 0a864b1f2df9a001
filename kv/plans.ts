/**
 * The plain data a {@linkcode PageTable} hands to a storage layer: what to copy, load, write and
 * save where, as block ids and pool slots. Nothing here touches K/V bytes.
 *
 * A pool holds `numBlocks` blocks of `blockSize` token slots (per layer; every layer's pool has the
 * same geometry and the same block ids). Token slot `s` is offset `s % blockSize` of block
 * `floor(s / blockSize)`, i.e. `s = block * blockSize + offset`.
 *
 * A storage layer executes plans in the order the table returned them, each in this order:
 * `copies`, then `loads`, then the K/V writes into `slots`; `saves` read blocks before any later
 * plan writes them. A block a plan frees may be handed out again by the very next plan.
 * @module
 */

/** A sequence id: an integer the table assigns (0, 1, 2, …), never reused after `free()`. */
export type SeqId = number;

/** The block-table entry of a block position that holds no block (outside a sliding window). */
export const NO_BLOCK: -1 = -1;

/** Copy every slot of block `from` to block `to` (copy-on-write of a shared partial block). */
export interface BlockCopy {
  /** Source block id. */
  readonly from: number;
  /** Destination block id, freshly allocated. */
  readonly to: number;
}

/** Fill block `block` from the page store entry `key` (written earlier by a {@linkcode BlockSave}). */
export interface BlockLoad {
  /** Destination block id. */
  readonly block: number;
  /** Page-store key: `prefix/<hash>` (shared, kept) or `swap/<table>/<seq>/<index>`. */
  readonly key: string;
}

/** Store block `block`'s contents in the page store under `key`. */
export interface BlockSave {
  /** Source block id. */
  readonly block: number;
  /** Page-store key: `prefix/<hash>` for a full block of a prefix-caching table, else `swap/…`. */
  readonly key: string;
}

/** A block an append filled, now in the prefix cache under `hash`: the one to persist, if any. */
export interface FilledBlock {
  /** Block id. */
  readonly block: number;
  /** Chained hash of the block's tokens (see {@linkcode prefixHashes}). */
  readonly hash: string;
  /** Its page-store key, `prefix/<hash>`. */
  readonly key: string;
}

/**
 * What an append asks of the storage layer. Tokens `tokens[0 .. cached)` are already in the pool
 * (prefix-cache hits, or blocks `loads` brings in): the model runs no query for them and writes
 * no K/V. Token `tokens[cached + i]` is at position `start + cached + i` and its K/V goes to pool
 * slot `slots[i]`, after `copies` and `loads` ran.
 */
export interface AppendPlan {
  /** The sequence appended to. */
  readonly seq: SeqId;
  /** The sequence's length before the append: the position of `tokens[0]`. */
  readonly start: number;
  /** Leading appended tokens whose K/V is already present (whole blocks; never the last token). */
  readonly cached: number;
  /** Pool slot of each token written, `tokens[cached]` onwards. */
  readonly slots: Int32Array;
  /** Block copies to run first. */
  readonly copies: readonly BlockCopy[];
  /** Prefix blocks to load from the page store (hits the caller reported through `stored`). */
  readonly loads: readonly BlockLoad[];
  /** Blocks this append filled and entered into the prefix cache, to persist after the writes. */
  readonly filled: readonly FilledBlock[];
}

/** What swapping a sequence out asks: save each block, then the blocks may be reused. */
export interface SwapOutPlan {
  /** The sequence swapped out. */
  readonly seq: SeqId;
  /** One save per block the sequence held, in table order. */
  readonly saves: readonly BlockSave[];
}

/** What swapping a sequence back in asks: load each block, then delete the `drop` keys. */
export interface SwapInPlan {
  /** The sequence swapped in. */
  readonly seq: SeqId;
  /** Blocks to fill from the store (blocks still in the prefix cache are shared, not loaded). */
  readonly loads: readonly BlockLoad[];
  /** Single-use `swap/…` keys the store may delete once the loads ran. */
  readonly drop: readonly string[];
}

/** A batch's block tables, padded with {@linkcode NO_BLOCK}, for a paged kernel. */
export interface BatchTables {
  /** `[numSeqs, maxBlocks]` row-major; row `i` is sequence `i`'s table. */
  readonly tables: Int32Array;
  /** Columns of `tables`: the longest table. */
  readonly maxBlocks: number;
  /** Each sequence's length in tokens. */
  readonly lengths: Int32Array;
}

/** Pool occupancy. `used + free + cached === numBlocks`. */
export interface PageTableStats {
  /** Blocks in the pool. */
  readonly numBlocks: number;
  /** Token slots per block. */
  readonly blockSize: number;
  /** Live sequences, swapped ones included. */
  readonly sequences: number;
  /** Sequences swapped out. */
  readonly swapped: number;
  /** Blocks some block table holds. */
  readonly used: number;
  /** Blocks on the free list. */
  readonly free: number;
  /** Blocks no table holds, kept for the prefix cache (evicted least recently used first). */
  readonly cached: number;
  /** Used blocks more than one table holds. */
  readonly shared: number;
  /** Slots of used blocks that hold a token. */
  readonly tokens: number;
  /** Slots of used blocks that hold no token (the partial last blocks). */
  readonly waste: number;
  /** Bytes of one block over all layers, K and V. */
  readonly blockBytes: number;
  /** Bytes of used blocks. */
  readonly usedBytes: number;
  /** Bytes of cached blocks. */
  readonly cachedBytes: number;
  /** Bytes of the empty slots of used blocks. */
  readonly wasteBytes: number;
  /** Bytes of the whole pool. */
  readonly totalBytes: number;
}
