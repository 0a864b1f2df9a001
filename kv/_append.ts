/**
 * Plans and commits one append: prefix-cache hits, sliding-window releases, copy-on-write of a
 * shared partial block, new blocks; checks that the pool has room before it changes anything.
 * @module
 */
import { OutOfBlocksError } from "../core/errors.ts";
import { blockHash } from "./_block_hash.ts";
import type { SeqState, TableState } from "./_state.ts";
import { type AppendPlan, type BlockLoad, type FilledBlock, NO_BLOCK } from "./plans.ts";

/** First block position a query at `firstQuery` and later still reads (window tables). */
export function liveFrom(state: TableState, firstQuery: number): number {
  const { window, blockSize } = state.config;
  if (window === undefined) return 0;
  return Math.max(0, Math.floor((firstQuery - window + 1) / blockSize));
}

interface Hits {
  count: number;
  hashes: string[];
  parents: string[];
  poolBlocks: (number | undefined)[];
}

/** The prefix-cache hits an append at a block boundary can use (whole blocks, never the last token). */
function findHits(
  state: TableState,
  seq: SeqState,
  tokens: ArrayLike<number>,
  stored: ReadonlySet<string> | undefined,
): Hits {
  const { pool, config } = state;
  const bs = config.blockSize, start = seq.tokens.length, a0 = start / bs;
  const m = Math.floor((tokens.length - 1) / bs);
  const hits: Hits = { count: 0, hashes: [], parents: [], poolBlocks: [] };
  if (!config.caching || start % bs !== 0 || m === 0) return hits;
  let parent = seq.hashes.at(-1) ?? config.root;
  const present: boolean[] = [];
  for (let j = 0; j < m; j++) {
    const hash = blockHash(parent, tokens, j * bs, (j + 1) * bs);
    const block = pool.lookup(hash, parent, tokens, j * bs);
    hits.hashes.push(hash), hits.parents.push(parent), hits.poolBlocks.push(block);
    present.push(block !== undefined || stored?.has(hash) === true);
    // Without a window every hit block is needed: stop at the first miss.
    if (!present[j] && config.window === undefined) break;
    parent = hash;
  }
  if (config.window === undefined) {
    hits.count = present.filter(Boolean).length;
    return hits;
  }
  // With a window, k hit blocks need only the sink blocks and those the first computed query
  // (position start + k * bs) still sees; take the largest k whose needed blocks are all present.
  const run = [0];
  for (let j = 0; j < m; j++) run.push(present[j] ? run[j] + 1 : 0);
  let leading = 0;
  while (leading < m && present[leading]) leading++;
  const sinks = Math.max(0, config.sinkBlocks - a0);
  for (let k = m; k > 0; k--) {
    const lo = Math.min(k, Math.max(0, liveFrom(state, start + k * bs) - a0));
    if (run[k] >= k - lo && Math.min(k, sinks) <= leading) {
      hits.count = k;
      break;
    }
  }
  return hits;
}

/**
 * Plans an append of checked `tokens` to a resident sequence and commits it.
 *
 * @throws {OutOfBlocksError} When the pool is short, with nothing changed.
 */
export function append(
  state: TableState,
  id: number,
  seq: SeqState,
  tokens: ArrayLike<number>,
  stored: ReadonlySet<string> | undefined,
): AppendPlan {
  const { pool, config } = state;
  const bs = config.blockSize, start = seq.tokens.length, n = tokens.length;
  const hits = findHits(state, seq, tokens, stored);
  const cached = hits.count * bs, a0 = start / bs;
  const live = Math.max(config.sinkBlocks, liveFrom(state, start + cached));
  const needed = (j: number) => a0 + j < config.sinkBlocks || a0 + j >= live;

  // Count before changing anything.
  const released: number[] = [];
  for (let b = seq.firstLive; b < Math.min(live, seq.blocks.length); b++) {
    if (seq.blocks[b] !== NO_BLOCK) released.push(seq.blocks[b]);
  }
  let revived = 0, fromStore = 0;
  for (let j = 0; j < hits.count; j++) {
    if (!needed(j)) continue;
    const block = hits.poolBlocks[j];
    if (block === undefined) fromStore++;
    else if (pool.refs[block] === 0) revived++;
  }
  const last = seq.blocks.length - 1;
  const cow = start % bs !== 0 && pool.refs[seq.blocks[last]] > 1 ? 1 : 0;
  const fresh = Math.ceil((start + n) / bs) - (Math.ceil(start / bs) + hits.count);
  const need = fromStore + cow + fresh;
  const freed = released.filter((b) => pool.refs[b] === 1).length;
  const avail = pool.available() + freed - revived;
  if (need > avail) throw new OutOfBlocksError(need, avail);

  // Commit.
  for (let i = 0; i < n; i++) seq.tokens.push(tokens[i]);
  for (let b = seq.firstLive; b < Math.min(live, seq.blocks.length); b++) {
    if (seq.blocks[b] !== NO_BLOCK) pool.unref(seq.blocks[b]), seq.blocks[b] = NO_BLOCK;
  }
  if (config.window !== undefined) seq.firstLive = Math.max(seq.firstLive, live);
  const loads: BlockLoad[] = [];
  const hitBlocks: number[] = [];
  for (let j = 0; j < hits.count; j++) {
    const block = hits.poolBlocks[j];
    if (needed(j) && block !== undefined) pool.ref(block);
    hitBlocks.push(needed(j) ? block ?? NO_BLOCK - 1 : NO_BLOCK);
  }
  for (let j = 0; j < hits.count; j++) {
    let block = hitBlocks[j];
    if (block === NO_BLOCK - 1) {
      block = pool.take();
      pool.ref(block);
      pool.setFill(block, bs);
      const from = (a0 + j) * bs;
      pool.register(block, hits.hashes[j], hits.parents[j], seq.tokens.slice(from, from + bs));
      loads.push(Object.freeze({ block, key: `prefix/${hits.hashes[j]}` }));
    }
    seq.blocks.push(block);
    seq.hashes.push(hits.hashes[j]);
  }
  const copies = [];
  if (cow) {
    const from = seq.blocks[last], to = pool.take();
    pool.ref(to);
    pool.setFill(to, pool.fill[from]);
    pool.unref(from);
    seq.blocks[last] = to;
    copies.push(Object.freeze({ from, to }));
  }
  const slots = new Int32Array(n - cached);
  const filled: FilledBlock[] = [];
  for (let pos = start + cached; pos < start + n; pos++) {
    const b = Math.floor(pos / bs), offset = pos - b * bs;
    if (b === seq.blocks.length) {
      const block = pool.take();
      pool.ref(block);
      seq.blocks.push(block);
    }
    const block = seq.blocks[b];
    slots[pos - start - cached] = block * bs + offset;
    pool.setFill(block, offset + 1);
    if (offset === bs - 1 && config.caching) {
      const parent = seq.hashes.at(-1) ?? config.root;
      const hash = blockHash(parent, seq.tokens, b * bs, pos + 1);
      seq.hashes.push(hash);
      if (pool.register(block, hash, parent, seq.tokens.slice(b * bs, pos + 1))) {
        filled.push(Object.freeze({ block, hash, key: `prefix/${hash}` }));
      }
    }
  }
  return Object.freeze({
    seq: id,
    start,
    cached,
    slots,
    copies: Object.freeze(copies),
    loads: Object.freeze(loads),
    filled: Object.freeze(filled),
  });
}
