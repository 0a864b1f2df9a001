/**
 * The block pool's bookkeeping: reference counts (how many block tables hold each block), the
 * free list, the prefix cache (hash -> block, with each block's tokens and parent hash for
 * confirmation) and the LRU of unreferenced cached blocks. Callers check that enough blocks are
 * available before they mutate anything, so `take()` never fails.
 * @module
 */

/** A prefix-cache entry: what a hit must match. */
interface CacheEntry {
  readonly block: number;
  readonly parent: string;
  readonly tokens: readonly number[];
}

export class BlockPool {
  readonly numBlocks: number;
  readonly blockSize: number;
  /** Block tables holding each block. */
  readonly refs: Int32Array;
  /** Slots of each block holding a token. */
  readonly fill: Int32Array;
  /** The hash each block is cached under, if any. */
  readonly hashOf: (string | undefined)[];
  /** Prefix cache: hash -> entry. */
  readonly cache = new Map<string, CacheEntry>();
  /** Unreferenced cached blocks, least recently used first (Map keeps insertion order). */
  readonly lru = new Map<number, true>();
  readonly freeList: Int32Array;
  freeCount: number;
  used = 0;
  shared = 0;
  /** Sum of `fill` over used blocks. */
  usedFill = 0;

  constructor(numBlocks: number, blockSize: number) {
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    this.refs = new Int32Array(numBlocks);
    this.fill = new Int32Array(numBlocks);
    this.hashOf = new Array(numBlocks).fill(undefined);
    // Popped from the end: block 0 is handed out first.
    this.freeList = Int32Array.from({ length: numBlocks }, (_, i) => numBlocks - 1 - i);
    this.freeCount = numBlocks;
  }

  /** Blocks `take()` can hand out: free ones, then evicted cached ones. */
  available(): number {
    return this.freeCount + this.lru.size;
  }

  /** A block with no references, no tokens and no hash; evicts the LRU block if none is free. */
  take(): number {
    if (this.freeCount > 0) return this.freeList[--this.freeCount];
    const block = this.lru.keys().next().value as number;
    this.lru.delete(block);
    this.uncache(block);
    return block;
  }

  /** One more table holds `block` (revives it from the LRU). */
  ref(block: number): void {
    const r = this.refs[block]++;
    if (r === 0) {
      this.lru.delete(block);
      this.used++;
      this.usedFill += this.fill[block];
    } else if (r === 1) this.shared++;
  }

  /** One table fewer holds `block`; unheld, it goes to the LRU if cached, else to the free list. */
  unref(block: number): void {
    const r = --this.refs[block];
    if (r === 1) this.shared--;
    if (r !== 0) return;
    this.used--;
    this.usedFill -= this.fill[block];
    if (this.hashOf[block] !== undefined) this.lru.set(block, true);
    else {
      this.fill[block] = 0;
      this.freeList[this.freeCount++] = block;
    }
  }

  setFill(block: number, n: number): void {
    if (this.refs[block] > 0) this.usedFill += n - this.fill[block];
    this.fill[block] = n;
  }

  /** The cached block for `hash` whose parent and tokens match, if any. */
  lookup(
    hash: string,
    parent: string,
    tokens: ArrayLike<number>,
    start: number,
  ): number | undefined {
    const entry = this.cache.get(hash);
    if (entry === undefined || entry.parent !== parent) return undefined;
    for (let i = 0; i < entry.tokens.length; i++) {
      if (entry.tokens[i] !== tokens[start + i]) return undefined;
    }
    return entry.block;
  }

  /** Enters a full block into the prefix cache unless its hash is there already. */
  register(block: number, hash: string, parent: string, tokens: readonly number[]): boolean {
    if (this.cache.has(hash) || this.hashOf[block] !== undefined) return false;
    this.cache.set(hash, { block, parent, tokens });
    this.hashOf[block] = hash;
    return true;
  }

  /** Moves an unreferenced cached block to the LRU's recent end. */
  touch(block: number): void {
    if (this.lru.delete(block)) this.lru.set(block, true);
  }

  /** Frees up to `count` unreferenced cached blocks, least recently used first. */
  evict(count: number): number {
    let n = 0;
    for (const block of this.lru.keys()) {
      if (n === count) break;
      this.lru.delete(block);
      this.uncache(block);
      this.freeList[this.freeCount++] = block;
      n++;
    }
    return n;
  }

  private uncache(block: number): void {
    this.cache.delete(this.hashOf[block]!);
    this.hashOf[block] = undefined;
    this.fill[block] = 0;
  }
}
