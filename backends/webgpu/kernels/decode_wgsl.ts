/**
 * The decode kernel: a flash plan whose query rows fit one tile (one to a few query tokens per
 * sequence, times the grouped heads packed into the tile), run with the flash kernel's bindings,
 * parameters, dispatch grid and outputs, but shaped for reading a long KV once at memory speed.
 * A workgroup of `THREADS` invocations owns one (unit, key split) and the `R = qLen·pack` rows,
 * kept pre-scaled in workgroup memory; for each listed key tile of `tile.kv` keys:
 *
 * - scores: `G = THREADS / tile.kv` invocations per key, split `Gr` ways over the rows and `Gd`
 *   ways over the head dimension (interleaved `vec4`s, so the `Gd` invocations of a key read
 *   adjacent words of its K row straight from global memory, no staging); their partial dots go
 *   to workgroup memory;
 * - online softmax: 8 invocations per row add the partials of a key, apply `score_mod` (and
 *   `mask_mod` where the tile is partial or past the end), and reduce their keys to a local
 *   maximum and sum; after one barrier each row's invocations merge the 8 states, update the
 *   running `m` and `l` (kept in their registers) and store the weights P;
 * - O += P·V: invocations over (`vec4` of value dims, key subset), so each warp reads whole V
 *   rows coalesced, each keeping all R rows' accumulators in named registers.
 *
 * Four barriers per key tile, nothing staged but Q; the key subsets' accumulators are added once
 * at the end, a row per round. Loops over rows, dims and keys of a tile are unrolled by the
 * generator (R is compiled in); the run-time loops are the tile list, Q's staging and the end's
 * rounds (kept a loop: unrolled, their barriers cost llvmpipe seconds of JIT). Semantics follow
 * the flash kernel's softmax and epilogue fragments exactly (hidden keys weigh `-0.0` and are
 * selected away, NaN and ±Infinity as there, empty rows give zeros and `lse = -Infinity` or the
 * sink logit, key splits write plain states for the merge pass).
 * @module
 */
import { HIDDEN_WGSL, modifiersWgsl, NEG_INF_WGSL, NEG_WGSL, paramsWgsl } from "./_common_wgsl.ts";
import {
  DECODE_THREADS,
  type DecodeParams,
  type Geometry,
  geometry,
  LANES,
} from "./_decode_geometry.ts";
import { range } from "./_flash_geometry.ts";
import { inputsWgsl } from "./_flash_staging_wgsl.ts";
import {
  heldWgsl,
  keyLoopWgsl,
  nextRowsWgsl,
  pagedFnsWgsl,
  rowAt,
  sequenceWgsl,
} from "./_decode_keys_wgsl.ts";
export {
  DECODE_THREADS,
  decodeFits,
  type DecodeParams,
  decodeWorkgroupBytes,
} from "./_decode_geometry.ts";

/** Element loads of `vec4` `d4` of a row: four-wide when aligned, else four guarded scalars. */
function rowLoadsWgsl(vec: boolean): string {
  const load = (name: string, len: string, stride: string) =>
    vec
      ? `fn ${name}4(at: u32, d4: u32) -> vec4<f32> { return load4_${name}(at + 4u * d4); }`
      : `fn ${name}4(at: u32, d4: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  for (var c = 0u; c < 4u; c++) {
    let d = 4u * d4 + c;
    if (d < ${len}) { x[c] = load_${name}(at + d * ${stride}); }
  }
  return x;
}`;
  return [
    load("q", "p.head_dim", "p.q_sd"),
    load("k", "p.head_dim", "p.k_sd"),
    load("v", "p.value_dim", "p.v_sd"),
  ].join("\n");
}

/** WGSL source of a decode kernel. */
export function decodeWgsl(params: DecodeParams): string {
  const g = geometry(params);
  const R = params.rows, BK = params.tileKv, paged = params.paged ?? false;
  const rows = range(R);
  return `${paramsWgsl()}${inputsWgsl(params.dtype, params.vec)}${rowLoadsWgsl(params.vec)}
@group(0) @binding(4) var<storage, read> tiles: array<u32>;
@group(0) @binding(5) var<storage, read_write> out_buf: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse_buf: array<f32>;
${modifiersWgsl(params.mask, params.scoreMod, params.sinkLogits)}${NEG_WGSL}${
    pagedFnsWgsl(paged, BK)
  }
const BK: u32 = ${BK}u;
const D4: u32 = ${g.d4}u;
const DV4: u32 = ${g.dv4}u;
const RPAD: u32 = ${g.rpad}u;
const LANES: u32 = ${LANES}u;
const KS: u32 = ${g.ks}u;

// Q pre-scaled [row][d4]; after the last tile, one row's O per key subset [subset][d4].
var<workgroup> qv: array<vec4<f32>, ${g.qv}>;
// Partial scores [slice][row][key], then the weights P [row][key].
var<workgroup> sc: array<f32, ${g.sc}>;
// Each softmax invocation's (maximum, sum) over its keys [row][lane].
var<workgroup> red: array<vec2<f32>, ${g.rpad * LANES}>;
var<workgroup> alpha: array<f32, ${g.rpad}>;
var<workgroup> ml: array<vec2<f32>, ${g.rpad}>;

@compute @workgroup_size(${DECODE_THREADS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let unit = wg.y + p.head_base;
  let units = p.heads / p.pack;
  let b = unit / units;
  let u = unit % units;
  let kvh = (u * p.pack) / p.group;
  ${sequenceWgsl(paged)}
  // This workgroup's rows (query rows × packed heads) start at row0.
  let row0 = wg.x * ${R}u;

  ${g.d4 > 0 ? qStagingWgsl(R) : ""}

  // Scores: key a_key, rows a_gr + i·${g.gr}, vec4s a_gd + j·${g.gd}.
  let a_key = lid / ${g.gr * g.gd}u;
  let a_gr = (lid / ${g.gd}u) % ${g.gr}u;
  let a_gd = lid % ${g.gd}u;
  // Softmax: row s_row, keys s_lane + i·LANES; its running maximum and sum.
  let s_row = lid / LANES;
  let s_lane = lid % LANES;
  let s_on = s_row < ${R}u;
  let hr = u * p.pack + (row0 + s_row) % p.pack;
  let qr = (row0 + s_row) / p.pack;
  var m = NEG;
  var l = 0.0;
  // P·V: vec4 v_d4 of the value dims, keys v_ks + n·KS.
  let v_ks = lid / DV4;
  let v_d4 = lid % DV4;
  let v_on = v_ks < KS;
  ${rows.map((r) => `var o${r} = vec4<f32>(0.0);`).join("\n  ")}

  // This row tile's share of its key tiles (see tileShareWgsl).
  ${keyLoopWgsl(paged, BK, R, params.mask !== undefined)}

    workgroupBarrier();
    ${nextRowsWgsl(paged, BK)}
    ${scoresWgsl(g, paged)}
    workgroupBarrier();
    ${softmaxWgsl(params, g, paged)}
    workgroupBarrier();
    ${valueProductsWgsl(params, g, paged)}
  }

  ${epilogueWgsl(params)}
}
`;
}

/** The rows' Q, pre-scaled, into workgroup memory (zeros for padding rows). */
function qStagingWgsl(rows: number): string {
  return `for (var i = lid; i < RPAD * D4; i += ${DECODE_THREADS}u) {
    let f = i / D4;
    var x = vec4<f32>(0.0);
    let g = row0 + f;
    if (f < ${rows}u && g < p.q_len * p.pack) {
      let head = u * p.pack + g % p.pack;
      x = q4(p.q_off + b * p.q_sb + head * p.q_sh + (g / p.pack) * p.q_sn, i % D4) * p.scale;
    }
    qv[i] = x;
  }`;
}

/** Partial dot products of this invocation's rows and head-dimension slice with one key. */
function scoresWgsl(g: Geometry, paged: boolean): string {
  const acc = range(g.rp);
  const steps = range(g.dj).map((j) => {
    const body = [
      `let d4 = a_gd + ${j * g.gd}u;`,
      `let kx = k4(key_at, d4);`,
      ...acc.map((i) => `s${i} += dot(qv[(a_gr + ${i * g.gr}u) * D4 + d4], kx);`),
    ].join("\n        ");
    const guarded = (j + 1) * g.gd > g.d4;
    return guarded
      ? `if (a_gd + ${j * g.gd}u < D4) {\n        ${body}\n      }`
      : `{\n        ${body}\n      }`;
  });
  return `{
      let key = k0 + a_key;
      ${acc.map((i) => `var s${i} = 0.0;`).join(" ")}
      if (${heldWgsl(paged, "a_key")}) {
        let key_at = ${rowAt(paged, "k", "a_key")};
      ${steps.join("\n      ")}
      }
      ${
    acc.map((i) => `sc[(a_gd * RPAD + a_gr + ${i * g.gr}u) * BK + a_key] = s${i};`).join("\n      ")
  }
    }`;
}

/**
 * The online softmax step: scores from the partials, modified and masked; each invocation's
 * local state; after a barrier the row's state merged, `m`, `l` and `alpha` updated and P stored.
 */
function softmaxWgsl(params: DecodeParams, g: Geometry, paged: boolean): string {
  const keys = range(g.kl);
  const modCall = (fn: string, x: string) =>
    `${fn}(i32(b), i32(hr), i32(qr), i32(kv_idx), i32(q_len), i32(kv_len), ${x})`;
  const score = (i: number) => {
    const parts = range(g.gd).map((s) => `sc[(${s}u * RPAD + s_row) * BK + kk]`).join(" + ");
    return `{
        let kk = s_lane + ${i * LANES}u;
        let kv_idx = k0 + kk;
        var x = ${parts};${params.scoreMod ? `\n        x = ${modCall("score_mod", "x")};` : ""}
        if (check) {
          var ok = ${heldWgsl(paged, "kk")}${paged ? " && qr < q_len" : ""};${
      params.mask ? `\n          ok = ok && ${modCall("mask_mod", "0.0")};` : ""
    }
          if (!ok) { x = NEG; }
        }
        x${i} = x;
        lm = max(lm, x);
      }`;
  };
  const lanes = range(LANES);
  return `var lm = NEG;
    ${keys.map((i) => `var x${i} = NEG;`).join(" ")}
    if (s_on) {
      ${keys.map(score).join("\n      ")}
      var ls = 0.0;
      ${keys.map((i) => `ls += select(exp(x${i} - lm), 0.0, x${i} == NEG);`).join("\n      ")}
      red[lid] = vec2<f32>(lm, ls);
    }
    workgroupBarrier();
    if (s_on) {
      ${lanes.map((j) => `let r${j} = red[s_row * LANES + ${j}u];`).join("\n      ")}
      let mx = max(m, ${lanes.map((j) => `r${j}.x`).reduce((a, b) => `max(${a}, ${b})`)});
      let a = exp(m - mx);
      l = l * a + ${lanes.map((j) => `r${j}.y * exp(r${j}.x - mx)`).join(" + ")};
      m = mx;
      if (s_lane == 0u) { alpha[s_row] = a; }
      ${
    keys.map((i) =>
      `sc[s_row * BK + s_lane + ${
        i * LANES
      }u] = select(exp(x${i} - mx), ${HIDDEN_WGSL}, x${i} == NEG);`
    ).join("\n      ")
  }
    }`;
}

/**
 * O rescaled and O += P·V over this invocation's keys of the tile. With a mask, partial tiles
 * select hidden keys' terms away (so NaN or Inf in their v cannot reach a row); without one the
 * only hidden keys are past `Nk`, whose v loads as zeros.
 */
function valueProductsWgsl(params: DecodeParams, g: Geometry, paged: boolean): string {
  const rows = range(params.rows);
  const step = (n: number, hidden: boolean) => {
    const body = [
      `let kk = v_ks + ${n}u * KS;`,
      `var vx = vec4<f32>(0.0);`,
      ...(params.valueDim > 0
        ? [
          paged
            ? `{ let at = ${rowAt(paged, "v", "kk")}; if (at != NONE) { vx = v4(at, v_d4); } }`
            : `if (k0 + kk < kv_len) { vx = v4(${rowAt(paged, "v", "kk")}, v_d4); }`,
        ]
        : []),
      ...rows.map((r) => {
        const pw = `sc[${r}u * BK + kk]`;
        return hidden
          ? `{ let w = ${pw}; o${r} += select(w * vx, vec4<f32>(0.0), is_hidden(w)); }`
          : `o${r} += ${pw} * vx;`;
      }),
    ].join("\n        ");
    return (n + 1) * g.ks > params.tileKv
      ? `if (v_ks + ${n}u * KS < BK) {\n        ${body}\n      }`
      : `{\n        ${body}\n      }`;
  };
  const loop = (hidden: boolean) => range(g.nk).map((n) => step(n, hidden)).join("\n      ");
  return `if (v_on) {
      ${rows.map((r) => `o${r} *= alpha[${r}u];`).join("\n      ")}
      ${
    params.mask || paged
      ? `if (check) {\n      ${loop(true)}\n      } else {\n      ${loop(false)}\n      }`
      : loop(false)
  }
    }`;
}

/**
 * The flash epilogue's arithmetic per row (see `_flash_epilogue_wgsl.ts`): the key subsets' O
 * added through workgroup memory, one row at a time, then divided by the row's denominator (with
 * its sink logit unless this is a key split's plain state) and written with the row's lse.
 */
function epilogueWgsl(params: DecodeParams): string {
  const sink = params.sinkLogits !== undefined;
  // One row per round, in a run-time loop: unrolled, each round's two barriers cost software
  // rasterizers (llvmpipe) seconds of shader compilation.
  const pick = range(params.rows).slice(1).map((r) => `if (r == ${r}u) { o = o${r}; }`)
    .join("\n    ");
  return `if (s_on && s_lane == 0u) { ml[s_row] = vec2<f32>(m, l); }
  for (var r = 0u; r < ${params.rows}u; r++) {
    workgroupBarrier();
    var o = o0;
    ${pick}
    if (v_on) { qv[v_ks * DV4 + v_d4] = o; }
    workgroupBarrier();
    if (lid < DV4 && row0 + r < p.q_len * p.pack) {
      var x = qv[lid];
      for (var s = 1u; s < KS; s++) { x += qv[s * DV4 + lid]; }
      let st = ml[r];
      let mr = st.x;
      let total = st.y;
      let plain = select(1.0 / total, 0.0, total <= 0.0);
      let lse_plain = select(mr + log(total), ${NEG_INF_WGSL}, total <= 0.0);
      let head = u * p.pack + (row0 + r) % p.pack;
      ${
    sink
      ? `let sink = sink_logit(i32(b), i32(head), 0, 0, 0, 0, 0.0);
      let top = max(mr, sink);
      let kept = exp(mr - top);
      let denom = total * kept + exp(sink - top);
      let split_state = p.splits > 1u;
      let inv = select(select(kept / denom, 0.0, total <= 0.0), plain, split_state);
      let lse = select(select(top + log(denom), sink, total <= 0.0), lse_plain, split_state);`
      : `let inv = plain;
      let lse = lse_plain;`
  }
      let at = (b * p.heads + head) * p.q_len + (row0 + r) / p.pack + wg.z * p.split_stride;
      let v = x * inv;
      for (var c = 0u; c < 4u; c++) {
        if (lid * 4u + c < p.value_dim) { out_buf[at * p.value_dim + lid * 4u + c] = v[c]; }
      }
      if (lid == 0u) { lse_buf[min(at, arrayLength(&lse_buf) - 1u)] = lse; }
    }
  }`;
}
