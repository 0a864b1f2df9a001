/**
 * Chained hashes of a token sequence's full blocks.
 * @module
 */
import { assertInteger, checkOptions, MAX_SIZE } from "../core/_check.ts";
import { blockHash, rootHash } from "./_block_hash.ts";
import { assertTokens } from "./_checks.ts";

/** Options of {@linkcode prefixHashes}. */
export interface PrefixHashesOptions {
  /** Tokens per block. */
  blockSize: number;
  /** Salt of the chain, default `""`: name the model and KV layout, so stores never mix them. */
  salt?: string;
}

/**
 * The chained hash of each full block of `tokens`: block `j`'s hash covers its tokens and block
 * `j - 1`'s hash (block 0 chains from the salt), so equal hashes mean equal whole prefixes. These
 * are the hashes a {@linkcode PageTable} with the same block size and salt gives its blocks; a
 * storage layer uses them to ask a shared page store which prefix blocks it holds (keys
 * `prefix/<hash>`) before an append.
 *
 * @param tokens Token ids: non-negative integers.
 * @param options Block size and salt.
 * @returns One 32-hex-digit hash per full block, `floor(tokens.length / blockSize)` of them.
 * @throws {TypeError} For a non-array `tokens`, a non-number token or bad options.
 * @throws {RangeError} For a token that is not a non-negative integer or a bad block size.
 * @example
 * ```ts
 * import { prefixHashes } from "@attend/attend/kv";
 * import { assertEquals, assertNotEquals } from "@std/assert";
 * const a = prefixHashes([1, 2, 3, 4, 5], { blockSize: 2 });
 * const b = prefixHashes([1, 2, 9, 4], { blockSize: 2 });
 * assertEquals(a.length, 2);
 * assertEquals(a[0], b[0]);
 * assertNotEquals(a[1], b[1]); // same second block, different prefix
 * ```
 */
export function prefixHashes(
  tokens: ArrayLike<number>,
  options: PrefixHashesOptions,
): readonly string[] {
  const context = "hash prefix blocks";
  assertTokens(tokens, context);
  const o = checkOptions(context, "options", options, { blockSize: "number", salt: "string" });
  assertInteger(o.blockSize, context, "options.blockSize", 1, MAX_SIZE);
  const bs = o.blockSize;
  const out: string[] = [];
  let parent = rootHash(o.salt ?? "");
  for (let end = bs; end <= tokens.length; end += bs) {
    parent = blockHash(parent, tokens, end - bs, end);
    out.push(parent);
  }
  return Object.freeze(out);
}
