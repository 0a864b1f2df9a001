/**
 * The materialized kernel family: scores of a pass of heads written to memory, a row softmax in
 * place (these are the probabilities), then `P · V`. The baseline the flash kernel is measured
 * against, and the way to return probabilities.
 * @module
 */
import type { Expr } from "../../../core/expr.ts";
import type { DType } from "../../../core/tensor_desc.ts";
import {
  HIDDEN_WGSL,
  inputsWgsl,
  modifiersWgsl,
  NEG_INF_WGSL,
  NEG_WGSL,
  paramsWgsl,
} from "./_common_wgsl.ts";

/** Compile-time parameters of the materialized kernels. */
export interface MaterializedParams {
  readonly headDim: number;
  readonly valueDim: number;
  readonly dtype: DType;
  readonly mask?: Expr;
  readonly scoreMod?: Expr;
  /** One sink logit per query head, joining each row's denominator. */
  readonly sinkLogits?: readonly number[];
}

function header(params: MaterializedParams): string {
  return `${paramsWgsl()}${inputsWgsl(params.dtype)}
@group(0) @binding(4) var<storage, read_write> scores: array<f32>;
${NEG_WGSL}fn head_of(local: u32) -> vec3<u32> {
  let bh = local + p.head_base;
  let b = bh / p.heads;
  let h = bh % p.heads;
  return vec3<u32>(b, h, h / p.group);
}
`;
}

/** Scores `S[head][i][j]` of the pass; masked entries hold NEG. Grid (Nk/16, Nq/16, heads). */
export function scoresWgsl(params: MaterializedParams): string {
  const mod = params.scoreMod !== undefined;
  const mask = params.mask !== undefined;
  return `${header(params)}${modifiersWgsl(params.mask, params.scoreMod)}
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let j = id.x;
  let i = id.y;
  if (i >= p.q_len || j >= p.kv_len) { return; }
  let head = head_of(id.z);
  let b = head.x;
  let h = head.y;
  let qb = p.q_off + b * p.q_sb + h * p.q_sh + i * p.q_sn;
  let kb = p.k_off + b * p.k_sb + head.z * p.k_sh + j * p.k_sn;
  var dot = 0.0;
  for (var d = 0u; d < p.head_dim; d++) { dot += load_q(qb + d * p.q_sd) * load_k(kb + d * p.k_sd); }
  var x = dot * p.scale;
  ${mod ? "x = score_mod(i32(b), i32(h), i32(i), i32(j), i32(p.q_len), i32(p.kv_len), x);" : ""}
  ${
    mask
      ? "if (!mask_mod(i32(b), i32(h), i32(i), i32(j), i32(p.q_len), i32(p.kv_len), 0.0)) { x = NEG; }"
      : ""
  }
  scores[(id.z * p.q_len + i) * p.kv_len + j] = x;
}
`;
}

/**
 * Row softmax in place, and the row's lse. One workgroup per row; grid (rows % 65535, …). Masked
 * entries become `HIDDEN` (-0.0) probabilities, which the output pass skips.
 */
export function softmaxWgsl(params: MaterializedParams): string {
  const sinks = params.sinkLogits;
  // All modifiers are declared so that the sink logits sit where the bound literal table has them.
  return `${header(params)}${sinks ? modifiersWgsl(params.mask, params.scoreMod, sinks) : ""}
@group(0) @binding(5) var<storage, read_write> lse_buf: array<f32>;
var<workgroup> red: array<f32, 256>;
fn reduce(lid: u32, x: f32, is_max: bool) -> f32 {
  workgroupBarrier();
  red[lid] = x;
  for (var step = 128u; step > 0u; step >>= 1u) {
    workgroupBarrier();
    if (lid < step) {
      red[lid] = select(red[lid] + red[lid + step], max(red[lid], red[lid + step]), is_max);
    }
  }
  return workgroupUniformLoad(&red[0]);
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * 65535u;
  if (row >= p.rows) { return; }
  let base = row * p.kv_len;
  var mx = NEG;
  for (var j = lid; j < p.kv_len; j += 256u) { mx = max(mx, scores[base + j]); }
  mx = reduce(lid, mx, true);
  var sum = 0.0;
  for (var j = lid; j < p.kv_len; j += 256u) {
    let x = scores[base + j];
    let e = select(exp(x - mx), ${HIDDEN_WGSL}, x == NEG);
    scores[base + j] = e;
    sum += e;
  }
  sum = reduce(lid, sum, false);
  ${
    sinks
      ? `// The head's sink logit joins the denominator: p = e^(x - mx) · e^(mx - top) / denom.
  let hd = head_of(row / p.q_len);
  let sink = sink_logit(i32(hd.x), i32(hd.y), 0, 0, 0, 0, 0.0);
  let top = max(mx, sink);
  let kept = exp(mx - top);
  let denom = sum * kept + exp(sink - top);
  let inv = select(kept / denom, 0.0, sum <= 0.0);`
      : "let inv = select(1.0 / sum, 0.0, sum <= 0.0);"
  }
  for (var j = lid; j < p.kv_len; j += 256u) {
    let e = scores[base + j];
    scores[base + j] = select(e * inv, e, is_hidden(e));
  }
  if (lid == 0u) {
    let lse_row = min(p.head_base * p.q_len + row, arrayLength(&lse_buf) - 1u);
    lse_buf[lse_row] = ${
    sinks
      ? "select(top + log(denom), sink, sum <= 0.0)"
      : `select(mx + log(sum), ${NEG_INF_WGSL}, sum <= 0.0)`
  };
  }
}
`;
}

/**
 * `out[head][i][d] = Σ_j P[i][j] · V[j][d]` over visible keys (with a mask, hidden ones are
 * skipped). Grid (Dv/16, Nq/16, heads).
 */
export function outputWgsl(params: MaterializedParams): string {
  const term = params.mask
    ? "select(pj * load_v(vb + j * p.v_sn), 0.0, is_hidden(pj))"
    : "pj * load_v(vb + j * p.v_sn)";
  return `${header(params)}
@group(0) @binding(5) var<storage, read_write> out_buf: array<f32>;
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let d = id.x;
  let i = id.y;
  if (i >= p.q_len || d >= p.value_dim) { return; }
  let head = head_of(id.z);
  let vb = p.v_off + head.x * p.v_sb + head.z * p.v_sh + d * p.v_sd;
  let sb = (id.z * p.q_len + i) * p.kv_len;
  var acc = 0.0;
  for (var j = 0u; j < p.kv_len; j++) {
    let pj = scores[sb + j];
    acc += ${term};
  }
  out_buf[((id.z + p.head_base) * p.q_len + i) * p.value_dim + d] = acc;
}
`;
}

/** Packs f32 pairs into f16 words: `dst[w] = pack2x16float(src[2w], src[2w+1])`. */
export function packF16Wgsl(): string {
  return `@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> count: vec4<u32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let w = id.x + id.y * 65535u * 256u;
  if (2u * w >= count.x) { return; }
  let hi = select(0.0, src[min(2u * w + 1u, count.x - 1u)], 2u * w + 1u < count.x);
  dst[w] = pack2x16float(vec2<f32>(src[2u * w], hi));
}
`;
}
