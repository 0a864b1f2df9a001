/**
 * A sequence's hold on the pool. A new sequence holds no block; a fork holds one more reference
 * to each of its parent's blocks (that sharing is what copy-on-write later undoes); freeing or
 * swapping out drops the references last block first, so the prefix cache's LRU evicts a
 * sequence's tail before the head that other prompts share.
 * @module
 */
import type { SeqState, TableState } from "./_state.ts";
import { NO_BLOCK, type SeqId } from "./plans.ts";

/** Adds an empty sequence, or a fork of `parent` sharing its blocks; returns its id. */
export function startSeq(state: TableState, parent?: SeqState): SeqId {
  for (const block of parent?.blocks ?? []) if (block !== NO_BLOCK) state.pool.ref(block);
  state.seqs.set(state.nextId, {
    blocks: [...parent?.blocks ?? []],
    tokens: [...parent?.tokens ?? []],
    hashes: [...parent?.hashes ?? []],
    firstLive: parent?.firstLive ?? state.config.sinkBlocks,
    saved: undefined,
  });
  return state.nextId++;
}

/** Drops the sequence's references, last block first; its table then holds only `NO_BLOCK`. */
export function releaseBlocks(state: TableState, seq: SeqState): void {
  for (let b = seq.blocks.length - 1; b >= 0; b--) {
    if (seq.blocks[b] !== NO_BLOCK) state.pool.unref(seq.blocks[b]), seq.blocks[b] = NO_BLOCK;
  }
}

/** Removes a live sequence; returns the single-use `swap/…` keys it left in a page store. */
export function endSeq(state: TableState, id: SeqId, seq: SeqState): readonly string[] {
  const drop = (seq.saved ?? []).filter((k): k is string => k?.startsWith("swap/") === true);
  releaseBlocks(state, seq);
  state.seqs.delete(id);
  return Object.freeze(drop);
}
