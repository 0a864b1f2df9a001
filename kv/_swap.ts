/**
 * Swap a sequence's blocks out to a page store and back. Full blocks of a prefix-caching table
 * are saved under their content key `prefix/<hash>` (shared, persistent); the others under a
 * single-use `swap/<table>/<seq>/<position>` key.
 * @module
 */
import { OutOfBlocksError } from "../core/errors.ts";
import { releaseBlocks } from "./_sequences.ts";
import type { SeqState, TableState } from "./_state.ts";
import { type BlockLoad, NO_BLOCK, type SwapInPlan, type SwapOutPlan } from "./plans.ts";

/** Releases every block after listing the saves; the sequence keeps its tokens and hashes. */
export function swapOut(state: TableState, id: number, seq: SeqState): SwapOutPlan {
  const { config } = state;
  const saves = [];
  const saved: (string | undefined)[] = [];
  for (let b = 0; b < seq.blocks.length; b++) {
    const block = seq.blocks[b];
    if (block === NO_BLOCK) {
      saved.push(undefined);
      continue;
    }
    const key = b < seq.hashes.length
      ? `prefix/${seq.hashes[b]}`
      : `swap/${config.tableId}/${id}/${b}`;
    saved.push(key);
    saves.push(Object.freeze({ block, key }));
  }
  releaseBlocks(state, seq);
  seq.saved = saved;
  return Object.freeze({ seq: id, saves: Object.freeze(saves) });
}

/**
 * Brings a swapped sequence back: blocks still in the prefix cache are shared again, the rest
 * allocated and loaded.
 *
 * @throws {OutOfBlocksError} When the pool is short, with nothing changed.
 */
export function swapIn(state: TableState, id: number, seq: SeqState): SwapInPlan {
  const { pool, config } = state;
  const bs = config.blockSize, saved = seq.saved!;
  const hits: (number | undefined)[] = [];
  let loadsNeeded = 0, revived = 0;
  for (let b = 0; b < saved.length; b++) {
    let hit: number | undefined;
    if (saved[b]?.startsWith("prefix/")) {
      const parent = b === 0 ? config.root : seq.hashes[b - 1];
      hit = pool.lookup(seq.hashes[b], parent, seq.tokens, b * bs);
    }
    hits.push(hit);
    if (saved[b] === undefined) continue;
    if (hit === undefined) loadsNeeded++;
    else if (pool.refs[hit] === 0) revived++;
  }
  const avail = pool.available() - revived;
  if (loadsNeeded > avail) throw new OutOfBlocksError(loadsNeeded, avail);

  for (let b = 0; b < saved.length; b++) if (hits[b] !== undefined) pool.ref(hits[b]!);
  const loads: BlockLoad[] = [], drop: string[] = [];
  for (let b = 0; b < saved.length; b++) {
    const key = saved[b];
    if (key === undefined) continue;
    let block = hits[b];
    if (block === undefined) {
      block = pool.take();
      pool.ref(block);
      pool.setFill(block, Math.min(bs, seq.tokens.length - b * bs));
      if (key.startsWith("prefix/")) {
        const parent = b === 0 ? config.root : seq.hashes[b - 1];
        pool.register(block, seq.hashes[b], parent, seq.tokens.slice(b * bs, (b + 1) * bs));
      } else drop.push(key);
      loads.push(Object.freeze({ block, key }));
    }
    seq.blocks[b] = block;
  }
  seq.saved = undefined;
  return Object.freeze({ seq: id, loads: Object.freeze(loads), drop: Object.freeze(drop) });
}
