/**
 * The flash-attention kernel template. A workgroup of `(tile.q/4) × (tile.kv/keysPerThread)`
 * invocations owns `tile.q` query rows and streams key tiles of `tile.kv` rows:
 *
 * - S = Q·Kᵀ: each invocation accumulates 4 rows × `keysPerThread` keys (strided across the
 *   tile, so stores of P are bank-conflict free) in `vec4` registers; the head dimension streams
 *   through two workgroup buffers in chunks of `dk` (Q pre-scaled on load), read as `vec4`s so
 *   one load feeds four rows or four keys, with one barrier per chunk;
 * - online softmax in f32, the rows' maxima reduced as `vec4`s across the invocations of a row;
 * - O += P·V: each invocation keeps 4 rows × `dc` `vec4` columns of O in named registers; P goes
 *   through workgroup memory transposed, V in chunks of `kc` keys.
 *
 * One workgroup array serves both phases: the Q/K chunks during S, then P and the V chunk.
 * Global loads run one chunk ahead in registers. With `vec` (head dims and strides multiples of
 * four, unit stride along the head dimension) every global load reads four elements at once.
 * The inner loops are unrolled `unroll` times by the generator (the shader compilers we measured
 * do not unroll them), and the register blocks are named registers, never indexed private arrays.
 * Where the tile allows, each 32 consecutive invocations cover 4 key columns × 8 row groups, so
 * a warp's workgroup loads touch few distinct addresses.
 *
 * With grouped heads the workgroup's rows interleave the group's query heads (row
 * `f = qIdx·pack + head-in-group`), so each K/V tile is read once for the whole group.
 * Empty tiles (from the plan's block layout) are skipped; `mask_mod` runs on partial tiles only,
 * and so does the `P·V` loop that skips hidden keys (one key per step, not unrolled: partial tiles
 * are few), so full tiles keep the plain unrolled loop. Without a mask that loop is not generated:
 * the only hidden keys are then past `Nk`, whose V loads as zeros (the second loop alone, never
 * run, cost 2% on an H100).
 * @module
 */
import type { Expr } from "../../../core/expr.ts";
import type { TileShape } from "../../../core/spec.ts";
import type { KernelPlan } from "../../../core/lower.ts";
import type { DType, TensorDesc } from "../../../core/tensor_desc.ts";
import { HIDDEN_WGSL, modifiersWgsl, NEG_INF_WGSL, NEG_WGSL, paramsWgsl } from "./_common_wgsl.ts";

/** Compile-time parameters of a flash kernel. */
export interface FlashParams {
  readonly headDim: number;
  readonly valueDim: number;
  readonly dtype: DType;
  /** Query rows × key rows per workgroup; both multiples of 4. */
  readonly tile: TileShape;
  /** Keys per invocation: 4, or 8 for half the invocations and twice the work each. */
  readonly keysPerThread: 4 | 8;
  /** Head-dimension chunk streamed through workgroup memory (a multiple of 8 with `vec`). */
  readonly dk: number;
  /** Keys per V chunk: a power of two dividing `tile.kv`. */
  readonly kc: number;
  /** Times the S and P·V inner loops are unrolled. */
  readonly unroll: number;
  /** Whether q, k and v are read four elements at a time (see `flashVecAligned`). */
  readonly vec: boolean;
  readonly mask?: Expr;
  readonly scoreMod?: Expr;
  /** One sink logit per query head, joining each row's denominator. */
  readonly sinkLogits?: readonly number[];
}

/** What fixes a flash kernel's workgroup size and memory. */
export type FlashShape = Pick<
  FlashParams,
  "tile" | "keysPerThread" | "dk" | "kc" | "valueDim" | "vec"
>;

/** Invocations per workgroup for a tile: one per 4 rows × `keysPerThread` keys of scores. */
export function flashThreads(tile: TileShape, keysPerThread: number): number {
  return (tile.q / 4) * (tile.kv / keysPerThread);
}

interface Geometry {
  /** vec4 slots per dimension of the Q chunk and of the K chunk (padded unless swizzled). */
  readonly qs: number;
  readonly ks: number;
  /** Whether the Q/K chunks' slots are swizzled instead of padded (see `vecStagingWgsl`). */
  readonly swizzle: boolean;
  /** `vec4` columns of V per invocation and per key. */
  readonly dc: number;
  readonly dvp4: number;
  /** `vec4`s of one Q/K chunk buffer (there are two). */
  readonly chunk: number;
  /** Offset of the V chunk / row reductions, after P. */
  readonly voff: number;
  /** `vec4`s of the workgroup array. */
  readonly slots: number;
}

function geometry(s: FlashShape): Geometry {
  const tq = s.tile.q / 4, kslots = s.tile.kv / 4, tk = s.tile.kv / s.keysPerThread;
  const dc = Math.max(1, Math.ceil(s.valueDim / (4 * tk)));
  const dvp4 = dc * tk;
  const swizzle = s.vec && tq % 8 === 0 && kslots % 8 === 0;
  const [qs, ks] = swizzle ? [tq, kslots] : [tq + 1, kslots + 1];
  const voff = s.tile.kv * tq;
  const chunk = s.dk * (qs + ks);
  const slots = Math.max(2 * chunk, voff + Math.max(s.kc * dvp4, tk * tq));
  return { qs, ks, swizzle, dc, dvp4, chunk, voff, slots };
}

/** Workgroup bytes a flash kernel declares. */
export function flashWorkgroupBytes(s: FlashShape): number {
  return 16 * geometry(s).slots + (s.vec ? 0 : 4 * s.tile.q);
}

/** `vec4` items of global Q/K data each invocation prefetches per head-dimension chunk. */
export function flashPrefetchItems(s: FlashShape): number {
  return Math.ceil(qkItemCount(s) / flashThreads(s.tile, s.keysPerThread));
}

function qkItemCount(s: FlashShape): number {
  return s.vec ? (s.tile.q + s.tile.kv) * (s.dk / 4) : s.dk * (s.tile.q + s.tile.kv) / 4;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const ROWS = range(4);
const XYZW = ["x", "y", "z", "w"];

/** Storage bindings for q, k, v and their element loaders. */
function inputsWgsl(dtype: DType, vec: boolean): string {
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

/** WGSL source of a flash kernel. */
export function flashWgsl(params: FlashParams): string {
  const { dk: DK, kc: KC, tile, vec } = params;
  const g = geometry(params);
  const TQ = tile.q / 4, KSLOTS = tile.kv / 4, TK = tile.kv / params.keysPerThread;
  const THREADS = TQ * TK;
  const groups = range(params.keysPerThread / 4);
  const cols = range(g.dc);
  const qkItems = range(flashPrefetchItems(params));
  const vItems = range(Math.ceil((KC * g.dvp4) / THREADS));
  const uQK = Math.min(params.unroll, DK), uPV = Math.min(params.unroll, KC);
  // Four key columns × eight row groups per warp when the tile allows it.
  const warpX = TK % 4 === 0 && TQ % 8 === 0 && THREADS % 32 === 0 ? 4 : 0;

  const sreg = (r: number, gi: number) => `s${r}_${gi}`;
  const acc = (r: number, i: number) => `o${r}_${i}`;
  const each = (items: number[], line: (j: number) => string) =>
    items.map((j) => line(j)).join("\n      ");
  const item = (j: number) => `lid + ${j * THREADS}u`;
  const qkLoad = (j: number, dc: string) =>
    vec
      ? `qk${j} = qk_item(${item(j)}, q_row${j}, ${dc}, k0, k_base);`
      : `qk${j} = qk_item(${item(j)}, ${dc}, k0, k_base);`;
  const vLoad = (j: number, key0: string) => `vv${j} = v_item(${item(j)}, ${key0}, v_base);`;
  const modCall = (fn: string, x: string) =>
    `${fn}(i32(b), i32(hr[r]), i32(qr[r]), i32(kv_idx), i32(p.q_len), i32(p.kv_len), ${x})`;
  const elementwise = (r: number) =>
    groups.flatMap((gi) => range(4).map((c) => [gi, c])).map(([gi, c]) => {
      const x = `${sreg(r, gi)}.${XYZW[c]}`;
      return `{
        let kv_idx = k0 + tx + ${gi * TK + c * KSLOTS}u;
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
  // The chunk's swizzle at dimension d + w: a constant when the unrolled step covers whole
  // groups of eight dimensions.
  const swizzled = (slot: string, w: number) =>
    !g.swizzle
      ? slot
      : uQK % 8 === 0
      ? (w & 4 ? `((${slot}) ^ 4u)` : slot)
      : `((${slot}) ^ swz(d + ${w}u))`;
  const scoreSteps = range(uQK).map((w) =>
    [
      `let a_${w} = sh[buf + (d + ${w}u) * QS + ${swizzled("ty", w)}];`,
      ...groups.map((gi) =>
        `let k${gi}_${w} = sh[buf + KOFF + (d + ${w}u) * KS + ${swizzled(`tx + ${gi * TK}u`, w)}];`
      ),
      ...groups.flatMap((gi) =>
        ROWS.map((r) => `${sreg(r, gi)} += a_${w}.${XYZW[r]} * k${gi}_${w};`)
      ),
    ].join("\n        ")
  ).join("\n        ");
  // On partial tiles a hidden key's weight is -0.0: select it away rather than multiply, so
  // that NaN or Inf in its v cannot reach the row.
  const valueStep = (w: number, hidden: boolean) =>
    [
      `let p_${w} = sh[(kc + key + ${w}u) * BQ4 + ty];`,
      ...(hidden ? [`let n_${w} = bitcast<vec4<u32>>(p_${w}) == vec4<u32>(0x80000000u);`] : []),
      ...cols.map((i) => `let v${i}_${w} = sh[VOFF + (key + ${w}u) * DVP4 + tx + ${i * TK}u];`),
      ...cols.flatMap((i) =>
        ROWS.map((r) => {
          const term = `p_${w}.${XYZW[r]} * v${i}_${w}`;
          return `${acc(r, i)} += ${
            hidden ? `select(${term}, vec4<f32>(0.0), n_${w}.${XYZW[r]})` : term
          };`;
        })
      ),
    ].join("\n          ");
  const plainValueLoop = `for (var key = 0u; key < KC; key += ${uPV}u) {
          ${range(uPV).map((w) => valueStep(w, false)).join("\n          ")}
        }`;

  return `${paramsWgsl()}${inputsWgsl(params.dtype, vec)}
@group(0) @binding(4) var<storage, read> tiles: array<u32>;
@group(0) @binding(5) var<storage, read_write> out_buf: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse_buf: array<f32>;
${modifiersWgsl(params.mask, params.scoreMod, params.sinkLogits)}${NEG_WGSL}
const BQ: u32 = ${tile.q}u;
const BK: u32 = ${tile.kv}u;
const BQ4: u32 = ${TQ}u;
const BK4: u32 = ${KSLOTS}u;
const TK: u32 = ${TK}u;
const DK: u32 = ${DK}u;
const DVP4: u32 = ${g.dvp4}u;
const KC: u32 = ${KC}u;
const THREADS: u32 = ${THREADS}u;
const ALL_ROWS: u32 = ${tile.q + tile.kv}u;
const QK_ITEMS: u32 = ${qkItemCount(params)}u;
const V_ITEMS: u32 = KC * DVP4;
const NO_ROW: u32 = 0xffffffffu;
// Q/K chunk row strides, padded by one vec4 (unless swizzled) so that stores hit distinct banks.
const QS: u32 = ${g.qs}u;
const KS: u32 = ${g.ks}u;
const KOFF: u32 = ${DK * g.qs}u;
const CHUNK: u32 = ${g.chunk}u;
const VOFF: u32 = ${g.voff}u;

// S phase: two buffers of CHUNK vec4s, each a Q chunk [d][row/4] then a K chunk [d][key slot]
// at KOFF.
// P·V phase: P transposed [key][row/4] at 0, then the V chunk [key][d/4] (or row reductions).
var<workgroup> sh: array<vec4<f32>, ${g.slots}>;
${vec ? vecStagingWgsl(g.swizzle) : scalarStagingWgsl(tile.q)}

@compute @workgroup_size(${THREADS})
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
  ${
    warpX
      ? `let tx = lid % ${warpX}u + ${warpX}u * ((lid / 32u) % ${TK / warpX}u);
  let ty = (lid % 32u) / ${warpX}u + ${32 / warpX}u * ((lid / 32u) / ${TK / warpX}u);`
      : `let tx = lid % TK;
  let ty = lid / TK;`
  }
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
  ${
    vec ? each(qkItems, (j) => `let q_row${j} = q_row_offset(${item(j)}, f0, b, u);`) : `
  for (var r = lid; r < BQ; r += THREADS) {
    let f = f0 + r;
    q_rows[r] = select(NO_ROW, p.q_off + b * p.q_sb + (u * p.pack + f % p.pack) * p.q_sh +
      (f / p.pack) * p.q_sn, f < row_count);
  }
  workgroupBarrier();`
  }

  var m = vec4<f32>(NEG);
  var l = vec4<f32>(0.0);
  ${ROWS.flatMap((r) => cols.map((i) => `var ${acc(r, i)} = vec4<f32>(0.0);`)).join("\n  ")}

  // This row's listed key tiles. tiles: [row offsets at, entries at, first row per unit...,
  // row offsets..., entries...]; the unit's row r lists entries e in
  // [starts[base + r], starts[base + r + 1]), each (col << 1) | partial. Read-only storage
  // indexed by uniform values is uniform, so the barriers below are legal.
  let starts = tiles[0];
  let entries = tiles[1];
  let base = tiles[2u + unit] + row_tile;
  let first = tiles[starts + base];
  let last = tiles[starts + base + 1u];
  for (var e = first; e < last; e++) {
    let entry = tiles[entries + e];
    let col = entry >> 1u;
    let kind = select(2u, 1u, (entry & 1u) == 1u);
    let k0 = col * BK;
    let check = kind == 1u || k0 + BK > p.kv_len || f0 + BQ > row_count;

    ${
    ROWS.flatMap((r) => groups.map((gi) => `var ${sreg(r, gi)} = vec4<f32>(0.0);`)).join("\n    ")
  }
    ${each(qkItems, (j) => `var ${qkLoad(j, "0u")}`)}
    workgroupBarrier();
    ${each(qkItems, (j) => `qk_store(${item(j)}, qk${j}, 0u);`)}
    workgroupBarrier();
    // Double-buffered chunks: the next chunk is loaded during this one's products and stored in
    // the other buffer, whose readers all passed the previous chunk's barrier.
    for (var dc = 0u; dc < D; dc += DK) {
      let buf = select(0u, CHUNK, (dc / DK) % 2u == 1u);
      let more = dc + DK < D;
      if (more) {
        ${each(qkItems, (j) => qkLoad(j, "dc + DK"))}
      }
      for (var d = 0u; d < DK; d += ${uQK}u) {
        ${scoreSteps}
      }
      if (more) {
        ${each(qkItems, (j) => `qk_store(${item(j)}, qk${j}, CHUNK - buf);`)}
        workgroupBarrier();
      }
    }

    ${each(vItems, (j) => `var ${vLoad(j, "k0")}`)}
    ${ROWS.map(elementwise).join("\n    ")}
    workgroupBarrier();
    sh[VOFF + tx * BQ4 + ty] = vec4<f32>(${
    ROWS.map((r) => {
      const v = groups.map((gi) => sreg(r, gi)).reduce((a, b) => `max(${a}, ${b})`);
      return `max(max(${v}.x, ${v}.y), max(${v}.z, ${v}.w))`;
    }).join(",\n      ")
  });
    workgroupBarrier();
    var mx = m;
    for (var t = 0u; t < TK; t++) { mx = max(mx, sh[VOFF + t * BQ4 + ty]); }
    let alpha = exp(m - mx);
    m = mx;
    ${
    ROWS.flatMap((r) =>
      groups.map((gi) => {
        const v = sreg(r, gi);
        return `${v} = select(exp(${v} - mx.${
          XYZW[r]
        }), vec4<f32>(${HIDDEN_WGSL}), ${v} == vec4<f32>(NEG));`;
      })
    ).join("\n    ")
  }
    l = l * alpha + vec4<f32>(${
    ROWS.map((r) => `dot(${groups.map((gi) => sreg(r, gi)).join(" + ")}, vec4<f32>(1.0))`).join(
      ", ",
    )
  });
    ${
    groups.flatMap((gi) =>
      range(4).map((c) =>
        `sh[(tx + ${gi * TK + c * KSLOTS}u) * BQ4 + ty] = vec4<f32>(${
          ROWS.map((r) => `${sreg(r, gi)}.${XYZW[c]}`).join(", ")
        });`
      )
    ).join("\n    ")
  }
    ${ROWS.flatMap((r) => cols.map((i) => `${acc(r, i)} *= alpha.${XYZW[r]};`)).join("\n    ")}
    for (var kc = 0u; kc < BK; kc += KC) {
      workgroupBarrier();
      ${each(vItems, (j) => `if (${item(j)} < V_ITEMS) { sh[VOFF + ${item(j)}] = vv${j}; }`)}
      workgroupBarrier();
      if (kc + KC < BK) {
        ${each(vItems, (j) => vLoad(j, "k0 + kc + KC"))}
      }
      ${
    params.mask
      ? `if (check) {
        for (var key = 0u; key < KC; key++) {
          ${valueStep(0, true)}
        }
      } else {
        ${plainValueLoop}
      }`
      : plainValueLoop
  }
    }
  }

  workgroupBarrier();
  sh[VOFF + tx * BQ4 + ty] = l;
  workgroupBarrier();
  var total = vec4<f32>(0.0);
  for (var t = 0u; t < TK; t++) { total += sh[VOFF + t * BQ4 + ty]; }
  ${
    params.sinkLogits
      ? `// Each row's sink logit joins its denominator: out = acc · e^(m - top) / denom.
  let sinks = vec4<f32>(${
        ROWS.map((r) => `sink_logit(i32(b), i32(hr[${r}]), 0, 0, 0, 0, 0.0)`).join(", ")
      });
  let top = max(m, sinks);
  let kept = exp(m - top);
  let denom = total * kept + exp(sinks - top);
  let inv = select(kept / denom, vec4<f32>(0.0), total <= vec4<f32>(0.0));`
      : `let inv = select(1.0 / total, vec4<f32>(0.0), total <= vec4<f32>(0.0));`
  }
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
        ${
        params.sinkLogits
          ? `select(top.${XYZW[r]} + log(denom.${XYZW[r]}), sinks.${XYZW[r]}, total.${
            XYZW[r]
          } <= 0.0);`
          : `select(m.${XYZW[r]} + log(total.${XYZW[r]}), ${NEG_INF_WGSL}, total.${
            XYZW[r]
          } <= 0.0);`
      }
    }
  }`
    ).join("\n  ")
  }
}
`;
}

/**
 * Whether q, k and v can be read four elements at a time: head and value dims multiples of
 * four, unit stride along the head dimension, every other stride and the offsets multiples of
 * four (so a `vec4` never straddles rows).
 */
export function flashVecAligned(
  plan: Pick<KernelPlan, "q" | "k" | "v" | "sizes">,
): boolean {
  const aligned = (d: TensorDesc) =>
    d.strides[3] === 1 && d.offset % 4 === 0 && d.strides.slice(0, 3).every((s) => s % 4 === 0);
  return plan.sizes.headDim % 4 === 0 && plan.sizes.valueDim % 4 === 0 &&
    aligned(plan.q) && aligned(plan.k) && aligned(plan.v);
}

const DK_CHOICES = [64, 32, 16, 8, 4];
const MAX_PREFETCH = 4;

/**
 * Chunk sizes of a flash kernel for a plan's dims on a device: the smallest head-dimension chunk
 * covering the head dim, else the largest, that fits workgroup memory with at most four
 * prefetched `vec4`s per invocation (the smallest fitting one if none does); then the largest
 * V chunk that fits.
 *
 * @returns `dk` and `kc`, or undefined if the tile cannot fit at all.
 */
export function flashChunks(
  workgroupBytes: number,
  shape: Omit<FlashShape, "dk" | "kc">,
  headDim: number,
): { dk: number; kc: number } | undefined {
  const fits = (dk: number, kc: number) =>
    flashWorkgroupBytes({ ...shape, dk, kc }) <= workgroupBytes;
  const usable = DK_CHOICES.filter((dk) => (!shape.vec || dk % 8 === 0) && fits(dk, 1));
  const light = usable.filter((dk) => flashPrefetchItems({ ...shape, dk, kc: 1 }) <= MAX_PREFETCH);
  const pool = light.length ? light : usable.slice(-1);
  const dk = pool.findLast((d) => d >= headDim) ?? pool[0];
  if (dk === undefined) return undefined;
  const kc = DK_CHOICES.concat([2, 1]).find((k) => shape.tile.kv % k === 0 && fits(dk, k));
  return kc === undefined ? undefined : { dk, kc };
}
