/**
 * Global → workgroup staging of the flash kernel: the q, k, v bindings and loaders, the Q/K
 * chunk items (four-wide loads when aligned, any strides otherwise) and the V chunk items. The
 * kernel prefetches these items into registers one chunk ahead and stores them between barriers;
 * only this file knows where an item comes from and where it lands.
 * @module
 */
import type { DType } from "../../../core/tensor_desc.ts";
import { each, type FlashFrame, item } from "./_flash_geometry.ts";

/** Storage bindings for q, k, v and their element loaders. */
export function inputsWgsl(dtype: DType, vec: boolean): string {
  return ["q", "k", "v"].map((name, i) => {
    const binding = `@group(0) @binding(${i + 1}) var<storage, read> ${name}_buf`;
    if (vec && dtype === "f16") {
      return `${binding}: array<vec2<u32>>;
fn load4_${name}(i: u32) -> vec4<f32> {
  let w = ${name}_buf[i >> 2u];
  return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}`;
    }
    if (vec) {
      return `${binding}: array<vec4<f32>>;
fn load4_${name}(i: u32) -> vec4<f32> { return ${name}_buf[i >> 2u]; }`;
    }
    return dtype === "f16"
      ? `${binding}: array<u32>;
fn load_${name}(i: u32) -> f32 { return unpack2x16float(${name}_buf[i >> 1u])[i & 1u]; }`
      : `${binding}: array<f32>;
fn load_${name}(i: u32) -> f32 { return ${name}_buf[i]; }`;
  }).join("\n") + "\n";
}

/**
 * Global → workgroup staging with four-wide loads. Item `e` is four dimensions of one Q or K
 * row; two items of a row are adjacent so a warp reads whole 32-byte sectors. K rows are
 * permuted so that the scalar stores of sixteen consecutive items hit consecutive words. The two
 * halves of a warp then store dimensions `d` and `d + 4`: with \`swizzle\` the slots of every
 * odd group of four dimensions are XORed with 4, which puts the halves in distinct banks without
 * padding the rows (and keeps each warp's later vec4 reads within one aligned block of 8 slots).
 */
function vecStagingWgsl(swizzle: boolean): string {
  return `
fn swz(dim: u32) -> u32 { return ${swizzle ? "((dim >> 2u) & 1u) << 2u" : "0u"}; }
fn qk_row(e: u32) -> u32 { return (e / 2u) % ALL_ROWS; }
fn qk_d4(e: u32) -> u32 { return (e % 2u) + 2u * (e / (2u * ALL_ROWS)); }
fn k_slot(kk: u32) -> u32 { return (kk % 4u) * BK4 + kk / 4u; }
// Q row offsets are fixed per item for the whole workgroup: computed once, passed in.
fn q_row_offset(e: u32, f0: u32, b: u32, u: u32) -> u32 {
  let r = qk_row(e);
  let f = f0 + r;
  if (r >= BQ || f >= p.q_len * p.pack) { return NO_ROW; }
  return p.q_off + b * p.q_sb + (u * p.pack + f % p.pack) * p.q_sh + (f / p.pack) * p.q_sn;
}
fn qk_item(e: u32, row: u32, dc: u32, k0: u32, k_base: u32) -> vec4<f32> {
  let r = qk_row(e);
  let d = dc + 4u * qk_d4(e);
  var x = vec4<f32>(0.0);
  if (e < QK_ITEMS && d < p.head_dim) {
    if (r < BQ) {
      if (row != NO_ROW) { x = load4_q(row + d) * p.scale; }
    } else {
      let key = k0 + k_slot(r - BQ);
      if (key < p.kv_len) { x = load4_k(k_base + key * p.k_sn + d); }
    }
  }
  return x;
}
fn qk_store(e: u32, x: vec4<f32>, buf: u32) {
  if (e >= QK_ITEMS) { return; }
  let r = qk_row(e);
  let d = 4u * qk_d4(e);
  if (r < BQ) {
    for (var c = 0u; c < 4u; c++) { sh[buf + (d + c) * QS + ((r / 4u) ^ swz(d + c))][r % 4u] = x[c]; }
  } else {
    let key = k_slot(r - BQ);
    for (var c = 0u; c < 4u; c++) {
      sh[buf + KOFF + (d + c) * KS + ((key % BK4) ^ swz(d + c))][key / BK4] = x[c];
    }
  }
}
fn v_item(e: u32, key0: u32, v_base: u32) -> vec4<f32> {
  let key = key0 + e / DVP4;
  let d0 = (e % DVP4) * 4u;
  var x = vec4<f32>(0.0);
  if (e < V_ITEMS && key < p.kv_len && d0 < p.value_dim) { x = load4_v(v_base + key * p.v_sn + d0); }
  return x;
}`;
}

/**
 * Global → workgroup staging for any strides and head dims. Item `e` is one dimension of four
 * Q rows or four keys; the rows' offsets come from a workgroup table.
 */
function scalarStagingWgsl(tileQ: number): string {
  return `
var<workgroup> q_rows: array<u32, ${tileQ}>;
fn qk_item(e: u32, dc: u32, k0: u32, k_base: u32) -> vec4<f32> {
  let d = e % DK;
  let slot = e / DK;
  var x = vec4<f32>(0.0);
  if (e < QK_ITEMS && dc + d < p.head_dim) {
    if (slot < BQ4) {
      for (var c = 0u; c < 4u; c++) {
        let row = q_rows[slot * 4u + c];
        if (row != NO_ROW) { x[c] = load_q(row + (dc + d) * p.q_sd) * p.scale; }
      }
    } else {
      for (var c = 0u; c < 4u; c++) {
        let key = k0 + slot - BQ4 + c * BK4;
        if (key < p.kv_len) { x[c] = load_k(k_base + key * p.k_sn + (dc + d) * p.k_sd); }
      }
    }
  }
  return x;
}
fn qk_store(e: u32, x: vec4<f32>, buf: u32) {
  if (e >= QK_ITEMS) { return; }
  let d = e % DK;
  let slot = e / DK;
  sh[buf + select(KOFF + d * KS + slot - BQ4, d * QS + slot, slot < BQ4)] = x;
}
fn v_item(e: u32, key0: u32, v_base: u32) -> vec4<f32> {
  let key = key0 + e / DVP4;
  let d0 = (e % DVP4) * 4u;
  var x = vec4<f32>(0.0);
  if (e < V_ITEMS && key < p.kv_len) {
    for (var c = 0u; c < 4u; c++) {
      if (d0 + c < p.value_dim) { x[c] = load_v(v_base + key * p.v_sn + (d0 + c) * p.v_sd); }
    }
  }
  return x;
}`;
}

/** The staging functions for the frame's loads: four-wide, or for any strides. */
export function stagingWgsl(f: FlashFrame): string {
  return f.params.vec ? vecStagingWgsl(f.g.swizzle) : scalarStagingWgsl(f.params.tile.q);
}

/**
 * Where each Q row starts, computed once per workgroup: per prefetched item in registers with
 * four-wide loads, else in the `q_rows` table (then a barrier, since all invocations read it).
 */
export function qRowsWgsl(f: FlashFrame): string {
  return f.params.vec
    ? each(f.qkItems, (j) => `let q_row${j} = q_row_offset(${item(f, j)}, f0, b, u);`)
    : `
  for (var r = lid; r < BQ; r += THREADS) {
    let f = f0 + r;
    q_rows[r] = select(NO_ROW, p.q_off + b * p.q_sb + (u * p.pack + f % p.pack) * p.q_sh +
      (f / p.pack) * p.q_sn, f < row_count);
  }
  workgroupBarrier();`;
}

/** Loads item `j` of the Q/K chunk at head dimension `dc` into register `qk<j>`. */
export function qkLoad(f: FlashFrame, j: number, dc: string): string {
  return f.params.vec
    ? `qk${j} = qk_item(${item(f, j)}, q_row${j}, ${dc}, k0, k_base);`
    : `qk${j} = qk_item(${item(f, j)}, ${dc}, k0, k_base);`;
}

/** Stores the prefetched Q/K items into the chunk buffer at `buf`. */
export function qkStores(f: FlashFrame, buf: string): string {
  return each(f.qkItems, (j) => `qk_store(${item(f, j)}, qk${j}, ${buf});`);
}

/** Loads item `j` of the V chunk starting at key `key0` into register `vv<j>`. */
export function vLoad(f: FlashFrame, j: number, key0: string): string {
  return `vv${j} = v_item(${item(f, j)}, ${key0}, v_base);`;
}

/** Stores the prefetched V items into the V chunk. */
export function vStores(f: FlashFrame): string {
  return each(
    f.vItems,
    (j) => `if (${item(f, j)} < V_ITEMS) { sh[VOFF + ${item(f, j)}] = vv${j}; }`,
  );
}
