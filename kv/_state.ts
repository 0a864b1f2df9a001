/** The page table's mutable state, shared by its planning helpers. @module */
import type { BlockPool } from "./_block_pool.ts";

/** One sequence. */
export interface SeqState {
  /** Block id per block position; NO_BLOCK outside the window, and everywhere while swapped. */
  blocks: number[];
  /** Every token id appended. */
  tokens: number[];
  /** Chained hash of each full block (prefix-caching tables only). */
  hashes: string[];
  /** First block position past the sinks not yet released (sliding-window tables). */
  firstLive: number;
  /** While swapped out: the page-store key of each block position that held a block. */
  saved: (string | undefined)[] | undefined;
}

/** A table's fixed policy. */
export interface TableConfig {
  readonly blockSize: number;
  readonly caching: boolean;
  readonly root: string;
  readonly window: number | undefined;
  readonly sinkBlocks: number;
  readonly tableId: string;
}

/** Everything a table holds; reachable by tests through the module-private symbol below. */
export interface TableState {
  readonly pool: BlockPool;
  readonly config: TableConfig;
  readonly seqs: Map<number, SeqState>;
  nextId: number;
}

/** Each PageTable's state, for the tests' consistency checks (not exported from mod.ts). */
export const TABLE_STATES: WeakMap<object, TableState> = new WeakMap();
