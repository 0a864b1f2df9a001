/**
 * Where swapped-out and persisted KV blocks live.
 * @module
 */

/**
 * A key-value store of block payloads. Keys are the ones plans name: `prefix/<hash>` for full
 * blocks addressed by their chained prefix hash (equal keys mean equal contents, so they may be
 * shared by every sequence, table and process with the same salt), `swap/<table>/<seq>/<index>`
 * for a swapped-out sequence's other blocks (single-use). A payload is whatever bytes the storage
 * layer reads from a block (every layer's K and V, and anything it wants to confirm a hit with);
 * a store gives back exactly the bytes it was given, or nothing, never part of them.
 */
export interface PageStore {
  /**
   * The payload stored under `key`, a copy the caller may keep.
   * @param key A page key.
   */
  get(key: string): Promise<Uint8Array | undefined>;
  /**
   * Stores a copy of `bytes` under `key`, replacing what was there as a whole.
   * @param key A page key.
   * @param bytes The block payload.
   */
  put(key: string, bytes: Uint8Array): Promise<void>;
  /**
   * Removes `key`'s payload; no-op when there is none.
   * @param key A page key.
   */
  delete(key: string): Promise<void>;
  /**
   * Whether a payload is stored under `key`.
   * @param key A page key.
   */
  has(key: string): Promise<boolean>;
}
