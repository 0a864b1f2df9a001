/**
 * What a page table shows outside, derived on demand and never stored: the padded block tables a
 * paged kernel reads for a batch, and the occupancy report. The report reads the pool's running
 * counts (kept by `ref`, `unref` and `setFill`) rather than walking the blocks, so monitoring a
 * large pool costs no pass over it.
 * @module
 */
import type { SeqState, TableState } from "./_state.ts";
import type { KvPoolLayout } from "./kv_pool_layout.ts";
import { type BatchTables, NO_BLOCK, type PageTableStats } from "./plans.ts";

/** The sequences' block tables as one `[numSeqs, maxBlocks]` array padded with `NO_BLOCK`. */
export function batchTables(records: readonly SeqState[]): BatchTables {
  const maxBlocks = Math.max(0, ...records.map((r) => r.blocks.length));
  const tables = new Int32Array(records.length * maxBlocks).fill(NO_BLOCK);
  records.forEach((r, i) => tables.set(r.blocks, i * maxBlocks));
  const lengths = Int32Array.from(records, (r) => r.tokens.length);
  return Object.freeze({ tables, maxBlocks, lengths });
}

/** Blocks, slots and bytes used, free, cached, shared and wasted. */
export function tableStats(state: TableState, layout: KvPoolLayout): PageTableStats {
  const { pool, seqs } = state;
  const { numBlocks, blockSize, blockBytes, tokenBytes, layers } = layout;
  let swapped = 0;
  for (const r of seqs.values()) if (r.saved !== undefined) swapped++;
  const waste = pool.used * blockSize - pool.usedFill;
  return Object.freeze({
    numBlocks,
    blockSize,
    sequences: seqs.size,
    swapped,
    used: pool.used,
    free: pool.freeCount,
    cached: pool.lru.size,
    shared: pool.shared,
    tokens: pool.usedFill,
    waste,
    blockBytes,
    usedBytes: pool.used * blockBytes,
    cachedBytes: pool.lru.size * blockBytes,
    wasteBytes: waste * 2 * layers * tokenBytes,
    totalBytes: numBlocks * blockBytes,
  });
}
