/**
 * The paged KV cache's bookkeeping, free of storage: a {@linkcode PageTable} hands out blocks of
 * a pool, keeps per-sequence block tables with reference counts, copies shared partial blocks on
 * write, reuses prefix blocks by chained hashes (LRU eviction), releases blocks that fell out of
 * a sliding window (sinks kept), and swaps sequences to a {@linkcode PageStore}. Each operation
 * returns a frozen plan of block copies, loads, saves and token slots that a storage layer runs
 * through a backend. Page stores: {@linkcode MemoryPageStore} and {@linkcode DenoKvPageStore}.
 *
 * ```ts
 * import { PageTable } from "@attend/attend/kv";
 * import { assertEquals } from "@std/assert";
 *
 * const table = new PageTable({ numBlocks: 16, blockSize: 4, kvHeads: 2, headDim: 64, dtype: "f16" });
 * const seq = table.create();
 * const prefill = table.append(seq, [101, 7, 42, 9, 13]);
 * assertEquals([...prefill.slots], [0, 1, 2, 3, 4]); // write token i's K/V at slot i
 * const decode = table.append(seq, [88]);
 * assertEquals([...decode.slots], [5]);
 * assertEquals([...table.blockTable(seq)], [0, 1]);
 * table.free(seq);
 * ```
 * @module
 */
export * from "./plans.ts";
export * from "./kv_pool_layout.ts";
export * from "./assert_kv_rows.ts";
export * from "./prefix_hashes.ts";
export * from "./page_table.ts";
export * from "./page_store.ts";
export * from "./memory_page_store.ts";
export * from "./deno_kv_page_store.ts";
export * from "./kv_cache.ts";
