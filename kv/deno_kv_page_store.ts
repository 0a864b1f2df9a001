/**
 * A page store in Deno KV.
 * @module
 */
import { assertInteger, checkOptions } from "../core/_check.ts";
import { assertBytes, assertPageKey } from "./_checks.ts";
import type { PageStore } from "./page_store.ts";

/** Options of {@linkcode DenoKvPageStore}. */
export interface DenoKvPageStoreOptions {
  /** First key part of every entry, default `"attend-pages"`: several stores can share one KV. */
  namespace?: string;
  /** Bytes per value, default 65536 (Deno KV's value limit). */
  chunkBytes?: number;
}

/** What a page's meta entry holds: the generation its chunks live under. */
interface Meta {
  id: string;
  bytes: number;
  chunks: number;
}

// Deno KV's limits on one atomic operation: 1000 mutations, 800 KiB of keys and values.
const MAX_MUTATIONS = 1000;
const MAX_ATOMIC_BYTES = 819200;
const KEY_ALLOWANCE = 2048;
const READ_ATTEMPTS = 8;

/**
 * A {@linkcode PageStore} in Deno KV (`Deno.openKv`; needs `"unstable": ["kv"]` in deno.json or
 * `--unstable-kv`). A payload is split into values of at most `chunkBytes` under
 * `[namespace, "data", key, generation, i]`, and becomes visible only when the meta entry
 * `[namespace, "meta", key]` naming its generation is committed: chunks go in as many atomic
 * operations as Deno KV's limits need (1000 mutations, 800 KiB each), the meta last, so a reader
 * never sees half a block. A replaced or deleted generation's chunks are deleted after its meta
 * changed; a reader that meanwhile finds chunks missing reads the meta again.
 *
 * Shared by several server processes, the KV file is the one store they all see (SQLite with
 * Deno's locking: one writer at a time, readers concurrent); prefix pages are written once and
 * read many times, so this scales with reads. For many hosts, point `Deno.openKv` at a Deno
 * Deploy or self-hosted `denokv` URL: the same code, consistent reads and atomic commits across
 * machines. A writer that crashes between its chunks and its meta leaves unreachable chunks.
 *
 * @example
 * ```ts
 * import { DenoKvPageStore } from "@attend/attend/kv";
 * import { assertEquals } from "@std/assert";
 * const store = await DenoKvPageStore.open(":memory:");
 * const page = Uint8Array.from({ length: 200_000 }, (_, i) => i % 251);
 * await store.put("prefix/abc", page); // 4 chunks
 * assertEquals(await store.get("prefix/abc"), page);
 * await store.delete("prefix/abc");
 * assertEquals(await store.get("prefix/abc"), undefined);
 * store.close();
 * ```
 */
export class DenoKvPageStore implements PageStore {
  /** The database. */
  readonly kv: Deno.Kv;
  /** First key part of every entry. */
  readonly namespace: string;
  /** Bytes per value. */
  readonly chunkBytes: number;
  #owns = false;

  /**
   * Wraps an open database; `close()` leaves it open.
   *
   * @param kv The database.
   * @param options Namespace and chunk size.
   * @throws {TypeError} For bad options; {RangeError} for a chunk size outside 1..65536.
   */
  constructor(kv: Deno.Kv, options?: DenoKvPageStoreOptions) {
    const context = "create Deno KV page store";
    const o = checkOptions(context, "options", options, {
      namespace: "string",
      chunkBytes: "number",
    });
    this.chunkBytes = o.chunkBytes ?? 65536;
    assertInteger(this.chunkBytes, context, "options.chunkBytes", 1, 65536);
    this.namespace = o.namespace ?? "attend-pages";
    this.kv = kv;
  }

  /**
   * Opens a database (`Deno.openKv(path)`) and a store on it; `close()` closes it.
   *
   * @param path A file path, `":memory:"`, a KV URL, or undefined for Deno's default.
   * @param options Namespace and chunk size.
   * @returns The store.
   * @throws {TypeError} For bad options; errors of `Deno.openKv`.
   */
  static async open(path?: string, options?: DenoKvPageStoreOptions): Promise<DenoKvPageStore> {
    const kv = await Deno.openKv(path);
    try {
      const store = new DenoKvPageStore(kv, options);
      store.#owns = true;
      return store;
    } catch (error) {
      kv.close();
      throw error;
    }
  }

  /** Closes the database if `open()` opened it. */
  close(): void {
    if (this.#owns) this.kv.close();
  }

  /**
   * The payload under `key`, whole, or undefined.
   * @param key A page key.
   * @returns A fresh copy.
   * @throws {TypeError} / {RangeError} For a bad key; Error if chunks stay missing after retries.
   */
  async get(key: string): Promise<Uint8Array | undefined> {
    assertPageKey(key, "get page");
    for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
      const meta = await this.kv.get<Meta>(this.#metaKey(key));
      if (meta.value === null) return undefined;
      const { id, bytes, chunks } = meta.value;
      const out = new Uint8Array(bytes);
      let offset = 0, count = 0;
      for await (const entry of this.kv.list<Uint8Array>({ prefix: this.#dataKey(key, id) })) {
        out.set(entry.value, offset);
        offset += entry.value.length;
        count++;
      }
      if (count === chunks && offset === bytes) return out;
      // Replaced while we read: its chunks went away; the new meta names the new ones.
    }
    throw new Error(`Cannot get page: key ${JSON.stringify(key)} kept changing while read`);
  }

  /**
   * Stores `bytes` under `key`, visible all at once.
   * @param key A page key.
   * @param bytes The payload.
   * @throws {TypeError} For a payload that is not a Uint8Array, or a bad key.
   */
  async put(key: string, bytes: Uint8Array): Promise<void> {
    assertPageKey(key, "put page");
    assertBytes(bytes, "put page");
    const id = crypto.randomUUID();
    const size = this.chunkBytes;
    const chunks = Math.ceil(bytes.length / size);
    const perAtomic = Math.max(
      1,
      Math.min(MAX_MUTATIONS - 2, Math.floor(MAX_ATOMIC_BYTES / (size + KEY_ALLOWANCE)) - 1),
    );
    const meta: Meta = { id, bytes: bytes.length, chunks };
    const add = (atomic: Deno.AtomicOperation, first: number, last: number) => {
      for (let i = first; i < last; i++) {
        atomic.set([...this.#dataKey(key, id), i], bytes.slice(i * size, (i + 1) * size));
      }
    };
    // Chunks in groups; the last group commits with the meta.
    let first = 0;
    for (; chunks - first > perAtomic; first += perAtomic) {
      const atomic = this.kv.atomic();
      add(atomic, first, first + perAtomic);
      if (!(await atomic.commit()).ok) {
        throw new Error(`Cannot put page: a commit for key ${JSON.stringify(key)} failed`);
      }
    }
    await this.#swapMeta(key, meta, (atomic) => add(atomic, first, chunks));
  }

  /**
   * Removes `key`'s payload.
   * @param key A page key.
   * @throws {TypeError} / {RangeError} For a bad key.
   */
  async delete(key: string): Promise<void> {
    assertPageKey(key, "delete page");
    await this.#swapMeta(key, undefined, () => {});
  }

  /**
   * Whether `key` holds a payload.
   * @param key A page key.
   * @returns True when it does.
   * @throws {TypeError} / {RangeError} For a bad key.
   */
  async has(key: string): Promise<boolean> {
    assertPageKey(key, "check page");
    return (await this.kv.get(this.#metaKey(key))).value !== null;
  }

  #metaKey(key: string): Deno.KvKey {
    return [this.namespace, "meta", key];
  }

  #dataKey(key: string, id: string): Deno.KvKey {
    return [this.namespace, "data", key, id];
  }

  /**
   * Sets (or deletes) the meta over the one it read, with `add`'s mutations in the same commit,
   * retrying on top of a concurrent writer's meta; then deletes the replaced generation's chunks.
   */
  async #swapMeta(
    key: string,
    meta: Meta | undefined,
    add: (atomic: Deno.AtomicOperation) => void,
  ): Promise<void> {
    const metaKey = this.#metaKey(key);
    for (;;) {
      const old = await this.kv.get<Meta>(metaKey);
      const atomic = this.kv.atomic().check(old);
      add(atomic);
      if (meta === undefined) atomic.delete(metaKey);
      else atomic.set(metaKey, meta);
      if ((await atomic.commit()).ok) {
        if (old.value !== null) await this.#deleteChunks(key, old.value.id);
        return;
      }
    }
  }

  async #deleteChunks(key: string, id: string): Promise<void> {
    let atomic = this.kv.atomic(), n = 0;
    for await (const entry of this.kv.list({ prefix: this.#dataKey(key, id) })) {
      atomic.delete(entry.key);
      if (++n === MAX_MUTATIONS) {
        await atomic.commit();
        atomic = this.kv.atomic(), n = 0;
      }
    }
    if (n > 0) await atomic.commit();
  }
}
