/**
 * `pagedAttend()`: attention of a ragged batch of sequences over a paged KV cache, in one call.
 * @module
 */
import { attention } from "./core/spec.ts";
import { compose, groupHeads, type Transform } from "./core/transforms.ts";
import { page } from "./core/paging.ts";
import { tensorDesc } from "./core/tensor_desc.ts";
import { assertInteger, checkOptions, fail, MAX_SIZE } from "./core/_check.ts";
import type { Backend, RunOutputs, Tensor } from "./backends/backend.ts";
import type { KvCache } from "./kv/kv_cache.ts";
import type { SeqId } from "./kv/plans.ts";
import {
  assertBackend,
  checkSharedOptions,
  SHARED_OPTIONS,
  sharedTransforms,
} from "./_attend_options.ts";
import type { SharedAttendOptions } from "./attend.ts";

/** Options of `pagedAttend()`. */
export interface PagedAttendOptions extends SharedAttendOptions {
  /** The cache layer whose pools are read; default 0. */
  readonly layer?: number;
  /**
   * Queries each sequence asks (its last tokens), `[B]`; default `Nq` for each (at most its
   * length).
   */
  readonly queryLengths?: Int32Array | readonly number[];
  /**
   * Block-table columns, the capacity a plan is made for (default: the longest table). A
   * serving loop that plans once and runs many steps fixes it; see `page()`.
   */
  readonly maxBlocks?: number;
}

const CONTEXT = "paged attend";

const OPTIONS = {
  ...SHARED_OPTIONS,
  layer: "number",
  queryLengths: "object",
  maxBlocks: "number",
} as const;

/**
 * Runs attention for the sequences `seqs` of a paged KV cache: row `s` of `q` holds the
 * queries of sequence `seqs[s]`, its last tokens (their K/V already appended), bottom-right
 * aligned against its whole length. Fewer KV heads than query heads means GQA.
 *
 * @param backend The cache's backend.
 * @param q Queries `[seqs.length, Hq, Nq, D]`; rows past a sequence's query count are ignored.
 * @param cache The KV cache.
 * @param seqs Resident sequences, one per row of `q`.
 * @param options Layer, query counts, masks, score modifiers and outputs.
 * @returns `out` `[B, Hq, Nq, Dv]` (rows past a sequence's queries as rows with no key) and,
 * when asked, `lse`.
 * @throws {TypeError} / {RangeError} For bad options, sequences, shapes or a backend other than
 * the cache's, before any work starts.
 * @example
 * ```ts
 * import { createBackend, pagedAttend } from "@attend/attend";
 * import { KvCache } from "@attend/attend/kv";
 * const backend = await createBackend("cpu");
 * const cache = new KvCache(backend, { numBlocks: 16, blockSize: 4, kvHeads: 1, headDim: 8 });
 * const ones = (n: number) => backend.tensor(new Float32Array(8 * n).fill(1), [1, 1, n, 8]);
 * const a = cache.create(), b = cache.create();
 * await cache.append(a, [1, 2, 3, 4, 5], [{ k: ones(5), v: ones(5) }]);
 * await cache.append(b, [9, 8], [{ k: ones(2), v: ones(2) }]);
 * const q = backend.tensor(new Float32Array(2 * 2 * 8), [2, 2, 1, 8]); // one token each, 2 heads
 * const { out } = await pagedAttend(backend, q, cache, [a, b], { causal: true });
 * if ((await backend.read(out))[0] !== 1) throw new Error("mean of ones is one");
 * cache.dispose();
 * ```
 */
export async function pagedAttend(
  backend: Backend,
  q: Tensor,
  cache: KvCache,
  seqs: readonly SeqId[],
  options?: PagedAttendOptions,
): Promise<RunOutputs> {
  assertBackend(CONTEXT, backend);
  const opts = checkOptions(CONTEXT, "options", options, OPTIONS);
  checkSharedOptions(CONTEXT, opts);
  if (cache?.backend !== backend) {
    fail("type", CONTEXT, "cache", "a KvCache on this backend", cache);
  }
  if (opts.maxBlocks !== undefined) {
    assertInteger(opts.maxBlocks, CONTEXT, "options.maxBlocks", 0, MAX_SIZE);
  }
  const pools = cache.pools(opts.layer ?? 0);
  const pages = cache.batch(seqs, opts.maxBlocks);
  const { blockSize, kvHeads, headDim, dtype } = cache.layout;
  const capacity = pages.maxBlocks * blockSize;
  const logical = tensorDesc([seqs.length, kvHeads, capacity, headDim], dtype);
  const spec = attention(q, logical, logical, { scale: opts.scale, lse: opts.lse });
  const transforms: Transform[] = [];
  if (kvHeads !== spec.q.shape[1]) transforms.push(groupHeads());
  transforms.push(...sharedTransforms(opts), ...(opts.transforms ?? []), page(pools));
  const plan = backend.plan(compose(...transforms)(spec));
  const queryLengths = opts.queryLengths;
  return await backend.run(plan, {
    q,
    k: pools.k,
    v: pools.v,
    pages: { ...pages, ...(queryLengths ? { queryLengths } : {}) },
  });
}
