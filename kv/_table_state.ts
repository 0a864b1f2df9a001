/** A page table's checked options, its fresh state, and sequence-id look-ups. @module */
import { assertInteger, checkOptions, fail, MAX_SIZE } from "../core/_check.ts";
import { rootHash } from "./_block_hash.ts";
import { BlockPool } from "./_block_pool.ts";
import type { SeqState, TableState } from "./_state.ts";
import { type KvPoolLayout, kvPoolLayout, type KvPoolLayoutOptions } from "./kv_pool_layout.ts";
import type { PageTableOptions } from "./page_table.ts";

const LAYOUT_KEYS = ["numBlocks", "blockSize", "kvHeads", "headDim", "dtype", "layers"] as const;

/** Checks a page table's options and builds its empty state: every block free. */
export function newTableState(options: PageTableOptions): {
  layout: KvPoolLayout;
  policy: { window: number | undefined; sinks: number; prefixCaching: boolean };
  state: TableState;
} {
  const context = "create page table";
  const o = checkOptions(context, "options", options, {
    numBlocks: "number",
    blockSize: "number",
    kvHeads: "number",
    headDim: "number",
    dtype: "string",
    layers: "number",
    prefixCaching: "boolean",
    salt: "string",
    window: "number",
    sinks: "number",
  });
  const layoutOptions: Record<string, unknown> = {};
  for (const key of LAYOUT_KEYS) if (o[key] !== undefined) layoutOptions[key] = o[key];
  const layout = kvPoolLayout(layoutOptions as unknown as KvPoolLayoutOptions);
  const window = o.window;
  if (window !== undefined) assertInteger(window, context, "options.window", 1, MAX_SIZE);
  const sinks = o.sinks ?? 0;
  assertInteger(sinks, context, "options.sinks", 0, MAX_SIZE);
  if (sinks > 0 && window === undefined) {
    fail("range", context, "options.sinks", "0 when options.window is not set", sinks);
  }
  const prefixCaching = o.prefixCaching ?? true;
  const { numBlocks, blockSize } = layout;
  const state: TableState = {
    pool: new BlockPool(numBlocks, blockSize),
    config: Object.freeze({
      blockSize,
      caching: prefixCaching,
      root: rootHash(o.salt ?? ""),
      window,
      sinkBlocks: window === undefined ? 0 : Math.ceil(sinks / blockSize),
      tableId: crypto.randomUUID(),
    }),
    seqs: new Map(),
    nextId: 0,
  };
  return { layout, policy: { window, sinks, prefixCaching }, state };
}

/** Which sequences a look-up accepts: any live one, or only resident or swapped-out ones. */
export type SeqWanted = "live" | "resident" | "swapped";

/** The live sequence `seq` in the `wanted` state, or a RangeError/TypeError naming `field`. */
export function liveSeq(
  state: TableState,
  seq: unknown,
  context: string,
  field: string,
  wanted: SeqWanted,
): SeqState {
  const want = "a live sequence id";
  if (typeof seq !== "number") fail("type", context, field, want, seq);
  const record = state.seqs.get(seq);
  if (record === undefined) {
    const gone = Number.isInteger(seq) && seq >= 0 && seq < state.nextId;
    throw new RangeError(
      `Cannot ${context}: ${field} must be ${want}, current value is ${seq} (${
        gone ? "freed" : "never created"
      })`,
    );
  }
  if (wanted === "resident" && record.saved !== undefined) {
    throw new RangeError(
      `Cannot ${context}: ${field} must be a resident sequence id, current value is ${seq} (swapped out)`,
    );
  }
  if (wanted === "swapped" && record.saved === undefined) {
    throw new RangeError(
      `Cannot ${context}: ${field} must be a swapped-out sequence id, current value is ${seq} (resident)`,
    );
  }
  return record;
}
