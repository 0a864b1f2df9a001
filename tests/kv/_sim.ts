/**
 * Test helpers for the page table: a consistency check over its internal state, a snapshot to
 * prove a failed call changed nothing, and a simulated storage layer that executes plans on a
 * pool of numbers (each slot holds a value derived from the token's whole prefix, so a wrong
 * copy, a stale cache hit or a lost swap shows as a wrong value).
 * @module
 */
import { assert, assertEquals } from "@std/assert";
import { TABLE_STATES } from "../../kv/_state.ts";
import {
  type AppendPlan,
  NO_BLOCK,
  type PageTable,
  type SwapInPlan,
  type SwapOutPlan,
} from "../../kv/mod.ts";

/** Checks refcounts, free list, LRU, prefix cache and counters against the block tables. */
export function assertConsistent(table: PageTable): void {
  const s = TABLE_STATES.get(table)!;
  const { pool, config } = s;
  const n = pool.numBlocks, bs = config.blockSize;
  const holders = new Int32Array(n);
  const fill = new Int32Array(n).fill(-1);
  for (const [id, seq] of s.seqs) {
    const len = seq.tokens.length;
    if (seq.saved !== undefined) {
      assert(seq.blocks.every((b) => b === NO_BLOCK), `swapped ${id} holds blocks`);
    } else assertEquals(seq.blocks.length, Math.ceil(len / bs), `table length of ${id}`);
    if (config.caching) assertEquals(seq.hashes.length, Math.floor(len / bs), `hashes of ${id}`);
    const seen = new Set<number>();
    seq.blocks.forEach((b, i) => {
      if (b === NO_BLOCK) return;
      assert(b >= 0 && b < n, `block ${b} out of range`);
      assert(!seen.has(b), `sequence ${id} holds block ${b} twice`);
      seen.add(b);
      holders[b]++;
      const f = Math.min(bs, len - i * bs);
      if (fill[b] !== -1) assertEquals(fill[b], f, `sharers of block ${b} disagree on its fill`);
      fill[b] = f;
    });
  }
  const free = new Set<number>();
  for (let i = 0; i < pool.freeCount; i++) {
    const b = pool.freeList[i];
    assert(!free.has(b), `block ${b} twice on the free list`);
    free.add(b);
    assert(pool.hashOf[b] === undefined && !pool.lru.has(b), `free block ${b} is cached`);
  }
  let used = 0, shared = 0, usedFill = 0;
  for (let b = 0; b < n; b++) {
    assertEquals(pool.refs[b], holders[b], `refcount of block ${b}`);
    const states = [holders[b] > 0, free.has(b), pool.lru.has(b)].filter(Boolean).length;
    assertEquals(states, 1, `block ${b} is in ${states} of used, free, cached`);
    if (holders[b] > 0) used++, usedFill += fill[b], assertEquals(pool.fill[b], fill[b]);
    if (holders[b] > 1) shared++;
    if (pool.lru.has(b)) {
      assert(pool.hashOf[b] !== undefined, `LRU block ${b} has no hash`);
      assertEquals(pool.fill[b], bs);
    }
    const hash = pool.hashOf[b];
    if (hash !== undefined) assertEquals(pool.cache.get(hash)?.block, b, `cache entry of ${b}`);
  }
  for (const [hash, entry] of pool.cache) assertEquals(pool.hashOf[entry.block], hash);
  assertEquals([pool.used, pool.shared, pool.usedFill], [used, shared, usedFill], "counters");
  const stats = table.stats();
  assertEquals(stats.used + stats.free + stats.cached, n);
}

/** Everything a table holds, as a string: equal before and after a call that threw. */
export function snapshot(table: PageTable): string {
  const s = TABLE_STATES.get(table)!;
  const { pool } = s;
  return JSON.stringify({
    refs: [...pool.refs],
    fill: [...pool.fill],
    hashOf: pool.hashOf,
    free: [...pool.freeList.subarray(0, pool.freeCount)],
    lru: [...pool.lru.keys()],
    cache: [...pool.cache],
    counters: [pool.used, pool.shared, pool.usedFill],
    seqs: [...s.seqs],
    nextId: s.nextId,
  });
}

/** The value a token's K/V stands for: a hash of its whole prefix. */
export function prefixValues(tokens: readonly number[]): number[] {
  const out: number[] = [];
  let v = 0x811c9dc5;
  for (const t of tokens) out.push(v = (Math.imul(v ^ (t + 1), 0x01000193) >>> 0) + 1);
  return out;
}

/** A storage layer over numbers: runs plans the way a backend would run them over K/V. */
export class Sim {
  readonly pool: Float64Array;
  readonly store = new Map<string, Float64Array>();
  constructor(readonly table: PageTable) {
    this.pool = new Float64Array(table.layout.numBlocks * table.layout.blockSize);
  }

  #block(b: number): Float64Array {
    const bs = this.table.layout.blockSize;
    return this.pool.subarray(b * bs, (b + 1) * bs);
  }

  /** Copies, loads, writes; then persists the filled prefix blocks. */
  append(plan: AppendPlan, tokens: readonly number[]): void {
    for (const { from, to } of plan.copies) this.#block(to).set(this.#block(from));
    for (const { block, key } of plan.loads) {
      const page = this.store.get(key);
      assert(page !== undefined, `load of missing key ${key}`);
      this.#block(block).set(page);
    }
    const values = prefixValues(tokens);
    plan.slots.forEach((slot, i) => this.pool[slot] = values[plan.start + plan.cached + i]);
    for (const { block, key } of plan.filled) this.store.set(key, this.#block(block).slice());
  }

  swapOut(plan: SwapOutPlan): void {
    for (const { block, key } of plan.saves) this.store.set(key, this.#block(block).slice());
  }

  swapIn(plan: SwapInPlan): void {
    for (const { block, key } of plan.loads) {
      const page = this.store.get(key);
      assert(page !== undefined, `load of missing key ${key}`);
      this.#block(block).set(page);
    }
    for (const key of plan.drop) this.store.delete(key);
  }

  /** Every resident sequence reads its own prefix values through its block table. */
  verify(): void {
    const { blockSize: bs } = this.table.layout;
    const window = this.table.window;
    for (const seq of this.table.sequences()) {
      if (this.table.stats().swapped > 0 && !this.#resident(seq)) continue;
      const tokens = this.table.tokens(seq);
      const values = prefixValues(tokens);
      const blocks = this.table.blockTable(seq);
      for (let p = 0; p < tokens.length; p++) {
        const b = blocks[Math.floor(p / bs)];
        const kept = window === undefined || p >= tokens.length - window ||
          p < this.table.sinks;
        if (kept) assert(b !== NO_BLOCK, `seq ${seq} lost position ${p} that a query reads`);
        if (b === NO_BLOCK) continue;
        assertEquals(this.pool[b * bs + (p % bs)], values[p], `seq ${seq} position ${p}`);
      }
    }
  }

  #resident(seq: number): boolean {
    try {
      this.table.blockTable(seq);
      return true;
    } catch {
      return false;
    }
  }
}
