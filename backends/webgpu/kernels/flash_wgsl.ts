/**
 * The flash-attention kernel template. One workgroup of 256 invocations (16×16) owns a tile of
 * `BQ = 64` query rows of one head and streams key tiles of `BK = 64`:
 *
 * - S = Q·Kᵀ: each invocation accumulates a 4×4 register block, the head dimension streamed
 *   through workgroup memory in chunks of `DK` (Q pre-scaled on load);
 * - online softmax in f32: tile row maxima reduced across the 16 invocations sharing rows;
 * - O += P·V: each invocation keeps 4 rows × `4·DC` columns of O in registers; P goes through
 *   workgroup memory transposed, V in chunks of `KC` keys.
 *
 * Empty tiles (from the plan's block layout) are skipped; `mask_mod` runs on partial tiles only.
 * @module
 */
import type { Expr } from "../../../core/expr.ts";
import type { DType } from "../../../core/tensor_desc.ts";
import { inputsWgsl, modifiersWgsl, NEG_INF_WGSL, NEG_WGSL, paramsWgsl } from "./_common_wgsl.ts";

/** Compile-time parameters of a flash kernel. */
export interface FlashParams {
  readonly headDim: number;
  readonly valueDim: number;
  readonly dtype: DType;
  /** Head-dimension chunk streamed through workgroup memory. */
  readonly dk: number;
  readonly mask?: Expr;
  readonly scoreMod?: Expr;
}

/** Query rows and key rows per workgroup tile. */
export const FLASH_TILE = Object.freeze({ q: 64, kv: 64 });

/** Workgroup bytes the kernel declares for a chunk size and value dim. */
export function flashWorkgroupBytes(dk: number): number {
  return 4 * (2 * dk * 64 + 64 * 64) + 16;
}

/** WGSL source of a flash kernel. */
export function flashWgsl(params: FlashParams): string {
  const { valueDim: DV, dk: DK } = params;
  const DC = Math.ceil(DV / 64);
  const DVP = DC * 64;
  const KC = Math.min(64, 2 ** Math.floor(Math.log2((2 * DK * 64) / DVP)));
  const mask = params.mask !== undefined;
  const mod = params.scoreMod !== undefined;
  return `${paramsWgsl()}${inputsWgsl(params.dtype)}
@group(0) @binding(4) var<storage, read> kinds: array<u32>;
@group(0) @binding(5) var<storage, read_write> out_buf: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse_buf: array<f32>;
${modifiersWgsl(params.mask, params.scoreMod)}${NEG_WGSL}
const BQ: u32 = 64u;
const BK: u32 = 64u;
const DK: u32 = ${DK}u;
const DC: u32 = ${DC}u;
const DVP: u32 = ${DVP}u;
const KC: u32 = ${KC}u;

// Q chunk then K chunk (as [d][row]), reused for V chunks ([key][d]) and row reductions.
var<workgroup> qk: array<f32, ${2 * DK * 64}>;
// P transposed: [key][row].
var<workgroup> ps: array<vec4<f32>, ${(64 * 64) / 4}>;
var<workgroup> tile_kind: u32;

fn wg_put(i: u32, x: f32) { qk[i] = x; }
fn wg_get(i: u32) -> f32 { return qk[i]; }
fn wg_vec4(i: u32) -> vec4<f32> { return vec4<f32>(qk[i], qk[i + 1u], qk[i + 2u], qk[i + 3u]); }

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row_tile = wg.x;
  let bh = wg.y + p.head_base;
  let b = bh / p.heads;
  let h = bh % p.heads;
  let kvh = h / p.group;
  let D = p.head_dim;
  let DV = p.value_dim;
  let kv_heads = p.heads / p.group;
  let tx = lid & 15u;
  let ty = lid >> 4u;
  let q0 = row_tile * BQ;
  let q_base = p.q_off + b * p.q_sb + h * p.q_sh;
  let k_base = p.k_off + b * p.k_sb + kvh * p.k_sh;
  let v_base = p.v_off + b * p.v_sb + kvh * p.v_sh;
  _ = kv_heads;

  var m = array<f32, 4>(NEG, NEG, NEG, NEG);
  var l = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  var acc: array<vec4<f32>, ${4 * DC}>;

  for (var col = 0u; col < p.cols; col++) {
    if (lid == 0u) { tile_kind = kinds[row_tile * p.cols + col]; }
    let kind = workgroupUniformLoad(&tile_kind);
    if (kind == 0u) { continue; }
    let k0 = col * BK;
    let check = kind == 1u || k0 + BK > p.kv_len;

    var s = array<vec4<f32>, 4>();
    for (var dc = 0u; dc < D; dc += DK) {
      workgroupBarrier();
      for (var e = lid; e < DK * BQ; e += 256u) {
        let d = e % DK;
        let r = e / DK;
        var x = 0.0;
        if (q0 + r < p.q_len && dc + d < D) {
          x = load_q(q_base + (q0 + r) * p.q_sn + (dc + d) * p.q_sd) * p.scale;
        }
        wg_put(d * BQ + r, x);
        var y = 0.0;
        if (k0 + r < p.kv_len && dc + d < D) {
          y = load_k(k_base + (k0 + r) * p.k_sn + (dc + d) * p.k_sd);
        }
        wg_put(DK * BQ + d * BK + r, y);
      }
      workgroupBarrier();
      for (var d = 0u; d < DK; d++) {
        let a = wg_vec4(d * BQ + ty * 4u);
        let kk = wg_vec4(DK * BQ + d * BK + tx * 4u);
        s[0] += a.x * kk;
        s[1] += a.y * kk;
        s[2] += a.z * kk;
        s[3] += a.w * kk;
      }
    }

    var tile_max = array<f32, 4>(NEG, NEG, NEG, NEG);
    for (var r = 0u; r < 4u; r++) {
      let q_idx = q0 + ty * 4u + r;
      for (var c = 0u; c < 4u; c++) {
        let kv_idx = k0 + tx * 4u + c;
        var x = s[r][c];
        ${
    mod
      ? "x = score_mod(i32(b), i32(h), i32(q_idx), i32(kv_idx), i32(p.q_len), i32(p.kv_len), x);"
      : ""
  }
        if (check) {
          var ok = kv_idx < p.kv_len;
          ${
    mask
      ? "ok = ok && mask_mod(i32(b), i32(h), i32(q_idx), i32(kv_idx), i32(p.q_len), i32(p.kv_len), 0.0);"
      : ""
  }
          if (!ok) { x = NEG; }
        }
        s[r][c] = x;
        tile_max[r] = max(tile_max[r], x);
      }
    }
    workgroupBarrier();
    for (var r = 0u; r < 4u; r++) { wg_put((ty * 4u + r) * 16u + tx, tile_max[r]); }
    workgroupBarrier();
    var alpha: array<f32, 4>;
    for (var r = 0u; r < 4u; r++) {
      var mx = m[r];
      for (var t = 0u; t < 16u; t++) { mx = max(mx, wg_get((ty * 4u + r) * 16u + t)); }
      alpha[r] = exp(m[r] - mx);
      m[r] = mx;
      var sum = 0.0;
      for (var c = 0u; c < 4u; c++) {
        let x = s[r][c];
        let pr = select(0.0, exp(x - mx), x > NEG_HALF);
        s[r][c] = pr;
        sum += pr;
      }
      l[r] = l[r] * alpha[r] + sum;
    }
    for (var c = 0u; c < 4u; c++) {
      ps[(tx * 4u + c) * (BQ / 4u) + ty] = vec4<f32>(s[0][c], s[1][c], s[2][c], s[3][c]);
    }
    for (var i = 0u; i < DC; i++) {
      acc[i] *= alpha[0];
      acc[DC + i] *= alpha[1];
      acc[2u * DC + i] *= alpha[2];
      acc[3u * DC + i] *= alpha[3];
    }
    for (var kc = 0u; kc < BK; kc += KC) {
      workgroupBarrier();
      for (var e = lid; e < KC * DVP; e += 256u) {
        let key = e / DVP;
        let d = e % DVP;
        var x = 0.0;
        if (k0 + kc + key < p.kv_len && d < DV) {
          x = load_v(v_base + (k0 + kc + key) * p.v_sn + d * p.v_sd);
        }
        wg_put(e, x);
      }
      workgroupBarrier();
      for (var key = 0u; key < KC; key++) {
        let pv = ps[(kc + key) * (BQ / 4u) + ty];
        for (var i = 0u; i < DC; i++) {
          let vv = wg_vec4(key * DVP + (tx + 16u * i) * 4u);
          acc[i] += pv.x * vv;
          acc[DC + i] += pv.y * vv;
          acc[2u * DC + i] += pv.z * vv;
          acc[3u * DC + i] += pv.w * vv;
        }
      }
    }
  }

  workgroupBarrier();
  for (var r = 0u; r < 4u; r++) { wg_put((ty * 4u + r) * 16u + tx, l[r]); }
  workgroupBarrier();
  for (var r = 0u; r < 4u; r++) {
    let q_idx = q0 + ty * 4u + r;
    if (q_idx >= p.q_len) { continue; }
    var total = 0.0;
    for (var t = 0u; t < 16u; t++) { total += wg_get((ty * 4u + r) * 16u + t); }
    let inv = select(0.0, 1.0 / total, total > 0.0);
    let o = (bh * p.q_len + q_idx) * DV;
    for (var i = 0u; i < DC; i++) {
      let v = acc[r * DC + i] * inv;
      let d0 = (tx + 16u * i) * 4u;
      for (var c = 0u; c < 4u; c++) {
        if (d0 + c < DV) { out_buf[o + d0 + c] = v[c]; }
      }
    }
    if (tx == 0u) {
      lse_buf[min(bh * p.q_len + q_idx, arrayLength(&lse_buf) - 1u)] =
        select(${NEG_INF_WGSL}, m[r] + log(total), total > 0.0);
    }
  }
}
`;
}
