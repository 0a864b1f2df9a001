/**
 * How the decode kernel finds a unit's sequence and keys: contiguous K/V with the plan's tile
 * lists, or a paged pool read through block tables (`page()`). In paged mode binding 4 holds
 * `[blockSize, maxBlocks, queryLengthsAt, lengthsAt, tablesAt, ...]` as u32s, released blocks as
 * `NONE`, and the pools' strides sit in the parameter block by dimension: `sb` per block, `sh`
 * per slot, `sn` per KV head, `sd` per element. Every paged key tile is checked (lengths are
 * ragged and blocks may be released), and query rows past the sequence's count see no key.
 * @module
 */
import { tileShareWgsl } from "./_common_wgsl.ts";

/** Module-scope helpers: the element index of a paged key's row, or `NONE` if released. */
export function pagedFnsWgsl(paged: boolean): string {
  if (!paged) return "";
  return `const NONE: u32 = 0xffffffffu;
fn paged_at(base: u32, sb: u32, sh: u32, table: u32, key: u32) -> u32 {
  let block = tiles[table + key / tiles[0]];
  if (block == NONE) { return NONE; }
  return base + block * sb + (key % tiles[0]) * sh;
}
`;
}

/** In `main`: `q_len`, `kv_len` of the unit's sequence, and where its KV head's rows start. */
export function sequenceWgsl(paged: boolean): string {
  if (!paged) {
    return `let q_len = p.q_len;
  let kv_len = p.kv_len;
  let k_base = p.k_off + b * p.k_sb + kvh * p.k_sh;
  let v_base = p.v_off + b * p.v_sb + kvh * p.v_sh;`;
  }
  return `let q_len = tiles[tiles[2] + b];
  let kv_len = tiles[tiles[3] + b];
  let table = tiles[4] + b * tiles[1];
  let k_base = p.k_off + kvh * p.k_sn;
  let v_base = p.v_off + kvh * p.v_sn;`;
}

/** The element index of key `key`'s K or V row (paged: `NONE` where released; key < kv_len). */
export function rowAt(paged: boolean, role: "k" | "v", key: string): string {
  return paged
    ? `paged_at(${role}_base, p.${role}_sb, p.${role}_sh, table, ${key})`
    : `${role}_base + (${key}) * p.${role}_sn`;
}

/** Whether key `key` (below kv_len) is in a held block: always, unless paged. */
export function heldWgsl(paged: boolean, key: string): string {
  return paged ? ` && tiles[table + (${key}) / tiles[0]] != NONE` : "";
}

/**
 * The loop over this workgroup's share of key tiles, opened with `k0` (the tile's first key) and
 * `check` (whether its keys need the mask, the length and the block table).
 */
export function keyLoopWgsl(paged: boolean, keys: string): string {
  if (!paged) {
    return `${tileShareWgsl("wg.x")}
  for (var e = first; e < last; e++) {
    let entry = tiles[entries + e];
    let k0 = (entry >> 1u) * ${keys};
    let check = (entry & 1u) == 1u || k0 + ${keys} > kv_len;`;
  }
  return `let key_tiles = (kv_len + ${keys} - 1u) / ${keys};
  let share = (key_tiles + p.splits - 1u) / p.splits;
  let first = min(key_tiles, wg.z * share);
  let last = min(key_tiles, first + share);
  for (var e = first; e < last; e++) {
    let k0 = e * ${keys};
    let check = true;`;
}
