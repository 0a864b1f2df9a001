/**
 * A page store in host memory.
 * @module
 */
import { assertBytes, assertPageKey } from "./_checks.ts";
import type { PageStore } from "./page_store.ts";

/**
 * A {@linkcode PageStore} in this process's memory: a map of copies.
 *
 * @example
 * ```ts
 * import { MemoryPageStore } from "@attend/attend/kv";
 * import { assertEquals } from "@std/assert";
 * const store = new MemoryPageStore();
 * const bytes = new Uint8Array([1, 2, 3]);
 * await store.put("swap/t/0/0", bytes);
 * bytes[0] = 9; // the store kept a copy
 * assertEquals(await store.get("swap/t/0/0"), new Uint8Array([1, 2, 3]));
 * await store.delete("swap/t/0/0");
 * assertEquals(await store.has("swap/t/0/0"), false);
 * ```
 */
export class MemoryPageStore implements PageStore {
  readonly #pages = new Map<string, Uint8Array>();
  #bytes = 0;

  /** Payloads stored. */
  get size(): number {
    return this.#pages.size;
  }

  /** Bytes stored. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * A copy of `key`'s payload.
   * @param key A page key.
   * @returns The bytes, or undefined.
   * @throws {TypeError} / {RangeError} For a key that is not a non-empty string (≤ 1024 chars).
   */
  get(key: string): Promise<Uint8Array | undefined> {
    return Promise.resolve().then(() => {
      assertPageKey(key, "get page");
      return this.#pages.get(key)?.slice();
    });
  }

  /**
   * Stores a copy of `bytes`.
   * @param key A page key.
   * @param bytes The payload.
   * @throws {TypeError} For a payload that is not a Uint8Array, or a bad key.
   */
  put(key: string, bytes: Uint8Array): Promise<void> {
    return Promise.resolve().then(() => {
      assertPageKey(key, "put page");
      assertBytes(bytes, "put page");
      this.#bytes += bytes.length - (this.#pages.get(key)?.length ?? 0);
      this.#pages.set(key, bytes.slice());
    });
  }

  /**
   * Removes `key`'s payload.
   * @param key A page key.
   * @throws {TypeError} / {RangeError} For a bad key.
   */
  delete(key: string): Promise<void> {
    return Promise.resolve().then(() => {
      assertPageKey(key, "delete page");
      this.#bytes -= this.#pages.get(key)?.length ?? 0;
      this.#pages.delete(key);
    });
  }

  /**
   * Whether `key` holds a payload.
   * @param key A page key.
   * @returns True when it does.
   * @throws {TypeError} / {RangeError} For a bad key.
   */
  has(key: string): Promise<boolean> {
    return Promise.resolve().then(() => {
      assertPageKey(key, "check page");
      return this.#pages.has(key);
    });
  }
}
