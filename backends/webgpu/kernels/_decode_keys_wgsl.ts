/**
 * How the decode kernel finds a unit's sequence and keys: contiguous K/V with the plan's tile
 * lists, or a paged pool read through block tables (`page()`). In paged mode binding 4 holds
 * `[blockSize, maxBlocks, queryLengthsAt, lengthsAt, tablesAt, anyReleased, ...]` as u32s,
 * released blocks as `NONE`, and the pools' strides sit in the parameter block by dimension: `sb` per block, `sh`
 * per slot, `sn` per KV head, `sd` per element. Each key tile's rows are looked up once into
 * workgroup memory; a tile is checked (length, released blocks, padding rows) only with a mask,
 * when the batch has a released block, or when it holds the sequence's end or padding rows.
 * @module
 */
import { tileShareWgsl } from "./_common_wgsl.ts";

/**
 * Module scope: `NONE`, and in paged mode each key's K and V row index for two tiles (double
 * buffered: tile `e + 1`'s are looked up while tile `e` is computed, so the table read's latency
 * hides behind the tile's work and costs no barrier of its own).
 */
export function pagedFnsWgsl(paged: boolean, keys: number): string {
  if (!paged) return "";
  return `const NONE: u32 = 0xffffffffu;
var<workgroup> rows_k: array<u32, ${2 * keys}>;
var<workgroup> rows_v: array<u32, ${2 * keys}>;
// Key k0 + lid's K and V row indices (NONE past the length or in a released block) into half
// \`half\` of the row tables.
fn fill_rows(half: u32, k0: u32, lid: u32, kv_len: u32, table: u32, k_base: u32, v_base: u32) {
  if (lid >= ${keys}u) { return; }
  let key = k0 + lid;
  var kr = NONE;
  var vr = NONE;
  if (key < kv_len) {
    let block = tiles[table + key / tiles[0]];
    let slot = key % tiles[0];
    if (block != NONE) {
      kr = k_base + block * p.k_sb + slot * p.k_sh;
      vr = v_base + block * p.v_sb + slot * p.v_sh;
    }
  }
  rows_k[half + lid] = kr;
  rows_v[half + lid] = vr;
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

/**
 * The element index of tile key `kk`'s K or V row (below kv_len; paged: `NONE` past the length
 * or in a released block).
 */
export function rowAt(paged: boolean, role: "k" | "v", kk: string): string {
  return paged ? `rows_${role}[half + ${kk}]` : `${role}_base + (k0 + ${kk}) * p.${role}_sn`;
}

/** Whether tile key `kk` is held: below the length and, paged, in a held block. */
export function heldWgsl(paged: boolean, kk: string): string {
  return paged ? `rows_k[half + ${kk}] != NONE` : `k0 + ${kk} < kv_len`;
}

/**
 * The loop over this workgroup's share of key tiles, opened with `k0` (the tile's first key) and
 * `check` (whether its keys need the mask, the length and the block table).
 */
export function keyLoopWgsl(paged: boolean, keys: number, rows: number, masked: boolean): string {
  if (!paged) {
    return `${tileShareWgsl("wg.x")}
  for (var e = first; e < last; e++) {
    let entry = tiles[entries + e];
    let k0 = (entry >> 1u) * ${keys}u;
    let check = (entry & 1u) == 1u || k0 + ${keys}u > kv_len;`;
  }
  return `let key_tiles = (kv_len + ${keys}u - 1u) / ${keys}u;
  let share = (key_tiles + p.splits - 1u) / p.splits;
  let first = min(key_tiles, wg.z * share);
  let last = min(key_tiles, first + share);
  fill_rows((first & 1u) * ${keys}u, first * ${keys}u, lid, kv_len, table, k_base, v_base);
  for (var e = first; e < last; e++) {
    let k0 = e * ${keys}u;
    let half = (e & 1u) * ${keys}u;
    let check = ${
    masked ? "true" : `tiles[5] != 0u || k0 + ${keys}u > kv_len || row0 + ${rows}u > q_len * p.pack`
  };`;
}

/**
 * Paged: after the tile loop's first barrier, the next tile's row indices into the other half
 * (read last in the previous tile, which that barrier has closed).
 */
export function nextRowsWgsl(paged: boolean, keys: number): string {
  return paged
    ? `if (e + 1u < last) { fill_rows(${keys}u - half, k0 + ${keys}u, lid, kv_len, table, k_base, v_base); }`
    : "";
}
