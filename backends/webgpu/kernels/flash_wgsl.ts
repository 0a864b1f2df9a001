/**
 * The flash-attention kernel template. A workgroup of `(tile.q/4) × (tile.kv/keysPerThread)`
 * invocations owns `tile.q` query rows and streams key tiles of `tile.kv` rows:
 *
 * - S = Q·Kᵀ: each invocation accumulates 4 rows × `keysPerThread` keys (strided across the
 *   tile, so stores of P are bank-conflict free) in `vec4` registers; the head
 *   dimension streams through workgroup memory in chunks of `dk` (Q pre-scaled on load), read as
 *   `vec4`s so one load feeds four rows or four keys;
 * - online softmax in f32, the rows' maxima reduced as `vec4`s across the invocations of a row;
 * - O += P·V: each invocation keeps 4 rows × `dc` `vec4` columns of O in named registers; P goes
 *   through workgroup memory transposed, V in chunks of `kc` keys.
 *
 * The register blocks are unrolled by the generator, so no private array is indexed at run time.
 * With grouped heads the workgroup's rows interleave the group's query heads (row
 * `f = qIdx·pack + head-in-group`), so each K/V tile is read once for the whole group.
 * Empty tiles (from the plan's block layout) are skipped; `mask_mod` runs on partial tiles only.
 * @module
 */
import type { Expr } from "../../../core/expr.ts";
import type { TileShape } from "../../../core/spec.ts";
import type { DType } from "../../../core/tensor_desc.ts";
import { inputsWgsl, modifiersWgsl, NEG_INF_WGSL, NEG_WGSL, paramsWgsl } from "./_common_wgsl.ts";

/** Compile-time parameters of a flash kernel. */
export interface FlashParams {
  readonly headDim: number;
  readonly valueDim: number;
  readonly dtype: DType;
  /** Query rows × key rows per workgroup; both multiples of 4. */
  readonly tile: TileShape;
  /** Keys per invocation: 4, or 8 for half the invocations and twice the work each. */
  readonly keysPerThread: 4 | 8;
  /** Head-dimension chunk streamed through workgroup memory. */
  readonly dk: number;
  readonly mask?: Expr;
  readonly scoreMod?: Expr;
}

/** Invocations per workgroup for a tile: one per 4 rows × `keysPerThread` keys of scores. */
export function flashThreads(tile: TileShape, keysPerThread: number): number {
  return (tile.q / 4) * (tile.kv / keysPerThread);
}

/** Workgroup bytes the kernel declares for a tile and head-dimension chunk. */
export function flashWorkgroupBytes(tile: TileShape, dk: number): number {
  const [bq4, bk4] = [tile.q / 4 + 1, tile.kv / 4 + 1];
  return 16 * (dk * (bq4 + bk4) + tile.kv * bq4) + 4 * tile.q + 4;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const ROWS = range(4);
const XYZW = ["x", "y", "z", "w"];

/** WGSL source of a flash kernel. */
export function flashWgsl(params: FlashParams): string {
  const { valueDim: DV, dk: DK, tile } = params;
  const TQ = tile.q / 4, KSLOTS = tile.kv / 4, TK = tile.kv / params.keysPerThread;
  const groups = range(params.keysPerThread / 4);
  const sreg = (r: number, g: number) => `s${r}_${g}`;
  const DC = Math.max(1, Math.ceil(DV / (4 * TK)));
  const DVP4 = DC * TK;
  const shared4 = DK * (TQ + 1 + KSLOTS + 1);
  const KC = Math.min(tile.kv, 2 ** Math.floor(Math.log2(shared4 / DVP4)));
  const cols = range(DC);
  const THREADS = TQ * TK;
  const qkItems = range(Math.ceil((DK * (TQ + KSLOTS)) / THREADS));
  const vItems = range(Math.ceil((KC * DVP4) / THREADS));
  const each = (items: number[], line: (j: number) => string) =>
    items.map((j) => line(j)).join("\n      ");
  const acc = (r: number, i: number) => `o${r}_${i}`;
  const modCall = (fn: string, x: string) =>
    `${fn}(i32(b), i32(hr[r]), i32(qr[r]), i32(kv_idx), i32(p.q_len), i32(p.kv_len), ${x})`;
  const elementwise = (r: number) =>
    groups.flatMap((g) => range(4).map((c) => [g, c])).map(([g, c]) => {
      const x = `${sreg(r, g)}.${XYZW[c]}`;
      return `{
        let kv_idx = k0 + tx + ${g * TK + c * KSLOTS}u;
        var x = ${x};${params.scoreMod ? `\n        x = ${modCall("score_mod", "x")};` : ""}
        if (check) {
          var ok = kv_idx < p.kv_len && rows_ok[r];${
        params.mask ? `\n          ok = ok && ${modCall("mask_mod", "0.0")};` : ""
      }
          if (!ok) { x = NEG; }
        }
        ${x} = x;
      }`.replaceAll("[r]", `[${r}]`);
    }).join("\n      ");
  return `${paramsWgsl()}${inputsWgsl(params.dtype)}
@group(0) @binding(4) var<storage, read> kinds: array<u32>;
@group(0) @binding(5) var<storage, read_write> out_buf: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse_buf: array<f32>;
${modifiersWgsl(params.mask, params.scoreMod)}${NEG_WGSL}
const BQ: u32 = ${tile.q}u;
const BK: u32 = ${tile.kv}u;
const BQ4: u32 = ${TQ}u;
const BK4: u32 = ${KSLOTS}u;
const TK: u32 = ${TK}u;
const DK: u32 = ${DK}u;
const DVP4: u32 = ${DVP4}u;
const KC: u32 = ${KC}u;
const THREADS: u32 = ${TQ * TK}u;
// Row strides padded by one vec4 so that a quarter-warp's vec4 stores hit distinct banks.
const QS: u32 = ${TQ + 1}u;
const KS: u32 = ${KSLOTS + 1}u;
const KOFF: u32 = ${DK * (TQ + 1)}u;

// Q chunk [d][rows 4s..4s+3] then K chunk [d][keys s + BK4·c]; reused for V chunks [key][d/4]
// and row reductions.
var<workgroup> sh: array<vec4<f32>, ${shared4}>;
// P transposed: [key][row/4].
var<workgroup> ps: array<vec4<f32>, ${tile.kv * (TQ + 1)}>;
// Element offset of each tile row's query (row f: head u·pack + f % pack, query f / pack).
var<workgroup> q_rows: array<u32, ${tile.q}>;
var<workgroup> tile_kind: u32;

const QK_ITEMS: u32 = DK * (BQ4 + BK4);
const V_ITEMS: u32 = KC * DVP4;

// Item e of the Q/K chunk at dimensions [dc, dc + DK) for the key tile at k0: four rows or keys
// at one dimension.
fn qk_item(e: u32, dc: u32, k0: u32, k_base: u32) -> vec4<f32> {
  let d = e % DK;
  let slot = e / DK;
  var x = vec4<f32>(0.0);
  if (e < QK_ITEMS && dc + d < p.head_dim) {
    if (slot < BQ4) {
      for (var c = 0u; c < 4u; c++) {
        let row = q_rows[slot * 4u + c];
        if (row != 0xffffffffu) { x[c] = load_q(row + (dc + d) * p.q_sd) * p.scale; }
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

fn qk_slot(e: u32) -> u32 {
  let d = e % DK;
  let slot = e / DK;
  return select(KOFF + d * KS + slot - BQ4, d * QS + slot, slot < BQ4);
}

// Item e of the V chunk of KC keys from key0: four dimensions of one key.
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
}

@compute @workgroup_size(${TQ * TK})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row_tile = wg.x;
  let unit = wg.y + p.head_base;
  let units = p.heads / p.pack;
  let b = unit / units;
  let u = unit % units;
  let kvh = (u * p.pack) / p.group;
  let D = p.head_dim;
  let DV = p.value_dim;
  let row_count = p.q_len * p.pack;
  let tx = lid % TK;
  let ty = lid / TK;
  let f0 = row_tile * BQ;
  let k_base = p.k_off + b * p.k_sb + kvh * p.k_sh;
  let v_base = p.v_off + b * p.v_sb + kvh * p.v_sh;

  // This invocation's four rows: head and query index.
  var hr: array<u32, 4>;
  var qr: array<u32, 4>;
  var rows_ok: array<bool, 4>;
  ${
    ROWS.map((r) =>
      `{ let f = f0 + ty * 4u + ${r}u; hr[${r}] = u * p.pack + f % p.pack; qr[${r}] = f / p.pack; rows_ok[${r}] = f < row_count; }`
    ).join("\n  ")
  }

  for (var r = lid; r < BQ; r += THREADS) {
    let f = f0 + r;
    q_rows[r] = select(0xffffffffu, p.q_off + b * p.q_sb + (u * p.pack + f % p.pack) * p.q_sh +
      (f / p.pack) * p.q_sn, f < row_count);
  }

  var m = vec4<f32>(NEG);
  var l = vec4<f32>(0.0);
  ${ROWS.flatMap((r) => cols.map((i) => `var ${acc(r, i)} = vec4<f32>(0.0);`)).join("\n  ")}

  for (var col = 0u; col < p.cols; col++) {
    if (lid == 0u) { tile_kind = kinds[row_tile * p.cols + col]; }
    let kind = workgroupUniformLoad(&tile_kind);
    if (kind == 0u) { continue; }
    let k0 = col * BK;
    let check = kind == 1u || k0 + BK > p.kv_len || f0 + BQ > row_count;

    ${ROWS.flatMap((r) => groups.map((g) => `var ${sreg(r, g)} = vec4<f32>(0.0);`)).join("\n    ")}
    // Global loads run one chunk ahead in registers, overlapping the arithmetic.
    ${each(qkItems, (j) => `var qk${j} = qk_item(lid + ${j * THREADS}u, 0u, k0, k_base);`)}
    for (var dc = 0u; dc < D; dc += DK) {
      workgroupBarrier();
      ${
    each(
      qkItems,
      (j) =>
        `if (lid + ${j * THREADS}u < QK_ITEMS) { sh[qk_slot(lid + ${j * THREADS}u)] = qk${j}; }`,
    )
  }
      workgroupBarrier();
      if (dc + DK < D) {
        ${each(qkItems, (j) => `qk${j} = qk_item(lid + ${j * THREADS}u, dc + DK, k0, k_base);`)}
      }
      for (var d = 0u; d < DK; d++) {
        let a = sh[d * QS + ty];
        ${
    groups.map((g) =>
      `let k${g} = sh[KOFF + d * KS + tx + ${g * TK}u];\n        ` +
      ROWS.map((r) => `${sreg(r, g)} += a.${XYZW[r]} * k${g};`).join("\n        ")
    ).join("\n        ")
  }
      }
    }

    ${each(vItems, (j) => `var vv${j} = v_item(lid + ${j * THREADS}u, k0, v_base);`)}
    ${ROWS.map(elementwise).join("\n    ")}
    workgroupBarrier();
    sh[tx * QS + ty] = vec4<f32>(${
    ROWS.map((r) => {
      const v = groups.map((g) => sreg(r, g)).reduce((a, b) => `max(${a}, ${b})`);
      return `max(max(${v}.x, ${v}.y), max(${v}.z, ${v}.w))`;
    }).join(",\n      ")
  });
    workgroupBarrier();
    var mx = m;
    for (var t = 0u; t < TK; t++) { mx = max(mx, sh[t * QS + ty]); }
    let alpha = exp(m - mx);
    m = mx;
    ${
    ROWS.flatMap((r) =>
      groups.map((g) => {
        const v = sreg(r, g);
        return `${v} = select(vec4<f32>(0.0), exp(${v} - mx.${
          XYZW[r]
        }), ${v} > vec4<f32>(NEG_HALF));`;
      })
    ).join("\n    ")
  }
    l = l * alpha + vec4<f32>(${
    ROWS.map((r) => `dot(${groups.map((g) => sreg(r, g)).join(" + ")}, vec4<f32>(1.0))`).join(", ")
  });
    ${
    groups.flatMap((g) =>
      range(4).map((c) =>
        `ps[(tx + ${g * TK + c * KSLOTS}u) * QS + ty] = vec4<f32>(${
          ROWS.map((r) => `${sreg(r, g)}.${XYZW[c]}`).join(", ")
        });`
      )
    ).join("\n    ")
  }
    ${ROWS.flatMap((r) => cols.map((i) => `${acc(r, i)} *= alpha.${XYZW[r]};`)).join("\n    ")}
    for (var kc = 0u; kc < BK; kc += KC) {
      workgroupBarrier();
      ${
    each(vItems, (j) =>
      `if (lid + ${j * THREADS}u < V_ITEMS) { sh[lid + ${j * THREADS}u] = vv${j}; }`)
  }
      workgroupBarrier();
      if (kc + KC < BK) {
        ${each(vItems, (j) => `vv${j} = v_item(lid + ${j * THREADS}u, k0 + kc + KC, v_base);`)}
      }
      for (var key = 0u; key < KC; key++) {
        let pv = ps[(kc + key) * QS + ty];
        ${
    cols.map((i) =>
      `{
          let vv = sh[key * DVP4 + tx + ${i * TK}u];
          ${ROWS.map((r) => `${acc(r, i)} += pv.${XYZW[r]} * vv;`).join("\n          ")}
        }`
    ).join("\n        ")
  }
      }
    }
  }

  workgroupBarrier();
  sh[tx * QS + ty] = l;
  workgroupBarrier();
  var total = vec4<f32>(0.0);
  for (var t = 0u; t < TK; t++) { total += sh[t * QS + ty]; }
  let inv = select(vec4<f32>(0.0), 1.0 / total, total > vec4<f32>(0.0));
  ${
    ROWS.map((r) =>
      `if (rows_ok[${r}]) {
    let row = (b * p.heads + hr[${r}]) * p.q_len + qr[${r}];
    let o = row * DV;
    ${
        cols.map((i) =>
          `{
      let v = ${acc(r, i)} * inv.${XYZW[r]};
      let d0 = (tx + ${i * TK}u) * 4u;
      for (var c = 0u; c < 4u; c++) {
        if (d0 + c < DV) { out_buf[o + d0 + c] = v[c]; }
      }
    }`
        ).join("\n    ")
      }
    if (tx == 0u) {
      lse_buf[min(row, arrayLength(&lse_buf) - 1u)] =
        select(${NEG_INF_WGSL}, m.${XYZW[r]} + log(total.${XYZW[r]}), total.${XYZW[r]} > 0.0);
    }
  }`
    ).join("\n  ")
  }
}
`;
}
