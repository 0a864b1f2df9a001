/**
 * The hierarchical kernel family (Native Sparse Attention's three branches, see
 * `hierarchical()`): a pool pass writes each KV head's block summaries (mean keys and values,
 * f32), then a rows pass gives each query row one invocation that scores the visible summaries
 * (the compressed branch, an online softmax), keeps the `topK` best, attends to the union of
 * their blocks' full keys, then to the window, and writes `Σ weight · out_branch` in f32.
 * Memory: the summaries and the output; no Nq×Nk buffer.
 * @module
 */
import type { DType } from "../../../core/tensor_desc.ts";
import { inputsWgsl, NEG_WGSL, paramsWgsl } from "./_common_wgsl.ts";

/** Compile-time parameters of the hierarchical kernels. */
export interface HierarchicalParams {
  readonly headDim: number;
  readonly valueDim: number;
  /** Storage type of q, k, v and the gates. */
  readonly dtype: DType;
  /** Summaries the selected branch reads, 0..64 (the size of each row's private list). */
  readonly topK: number;
  /** Whether branch weights come from a gates tensor (else from per-head weights). */
  readonly gates: boolean;
}

/** Invocations per workgroup of both passes: consecutive ones are consecutive rows or dims. */
export const HIERARCHY_WORKGROUP = 64;

/**
 * Binding numbers beyond the parameter block (0) and q, k, v (1-3): pooled keys and values, the
 * f32 output, the hierarchy's uniform block and the branch weights (per-head f32 weights, or the
 * gates in q's storage type).
 */
export const HIERARCHY_BINDINGS = {
  pooledKeys: 4,
  pooledValues: 5,
  out: 6,
  hierarchy: 7,
  weights: 8,
} as const;

/**
 * Fields of the hierarchy's uniform block, in order (all u32): the branch sizes, the summary
 * count, the invocations a dispatch runs, and the gates' offset and strides.
 */
export const HIERARCHY_FIELDS = [
  "window",
  "block",
  "stride",
  "count",
  "total",
  "g_off",
  "g_sb",
  "g_sh",
  "g_sn",
  "g_sd",
  "pad0",
  "pad1",
] as const;

function header(params: HierarchicalParams, pooledAccess: "read" | "read_write"): string {
  const fields = HIERARCHY_FIELDS.map((f) => `  ${f}: u32,`).join("\n");
  const { pooledKeys, pooledValues, hierarchy } = HIERARCHY_BINDINGS;
  return `${paramsWgsl()}${inputsWgsl(params.dtype)}
struct Hierarchy {
${fields}
}
@group(0) @binding(${hierarchy}) var<uniform> hp: Hierarchy;
@group(0) @binding(${pooledKeys}) var<storage, ${pooledAccess}> pk: array<f32>;
@group(0) @binding(${pooledValues}) var<storage, ${pooledAccess}> pv: array<f32>;
const D: u32 = ${params.headDim}u;
const DV: u32 = ${params.valueDim}u;
fn invocation(id: vec3<u32>) -> u32 { return id.x + id.y * ${65535 * HIERARCHY_WORKGROUP}u; }
`;
}

/**
 * Pools block summaries: invocation `e` of `B·Hkv·S·max(D, Dv)` (dims fastest) writes the mean
 * of dim `d` over summary `s`'s keys into `pk[(b·Hkv + hk)·S + s][d]`, and likewise for values.
 * Grid from `grid(⌈total / 64⌉)`.
 */
export function poolWgsl(params: HierarchicalParams): string {
  return `${header(params, "read_write")}const WIDTH: u32 = ${
    Math.max(params.headDim, params.valueDim)
  }u;
@compute @workgroup_size(${HIERARCHY_WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let e = invocation(id);
  if (e >= hp.total) { return; }
  let d = e % WIDTH;
  let s = (e / WIDTH) % hp.count;
  let kvh = e / (WIDTH * hp.count);
  let kv_heads = p.heads / p.group;
  let b = kvh / kv_heads;
  let hk = kvh % kv_heads;
  let first = s * hp.stride;
  if (d < D) {
    let kb = p.k_off + b * p.k_sb + hk * p.k_sh + d * p.k_sd;
    var sum = 0.0;
    for (var j = first; j < first + hp.block; j++) { sum += load_k(kb + j * p.k_sn); }
    pk[(kvh * hp.count + s) * D + d] = sum / f32(hp.block);
  }
  if (d < DV) {
    let vb = p.v_off + b * p.v_sb + hk * p.v_sh + d * p.v_sd;
    var sum = 0.0;
    for (var j = first; j < first + hp.block; j++) { sum += load_v(vb + j * p.v_sn); }
    pv[(kvh * hp.count + s) * DV + d] = sum / f32(hp.block);
  }
}
`;
}

/** `weight_of(b, h, i, branch)`: the per-head weights, or the gates (strided, f32 or f16). */
function weightsWgsl(params: HierarchicalParams): string {
  const binding = `@group(0) @binding(${HIERARCHY_BINDINGS.weights}) var<storage, read>`;
  if (!params.gates) {
    return `${binding} weights: array<f32>;
fn weight_of(b: u32, h: u32, i: u32, branch: u32) -> f32 { return weights[h * 3u + branch]; }
`;
  }
  const f16 = params.dtype === "f16";
  return `${binding} gates: array<${f16 ? "u32" : "f32"}>;
fn weight_of(b: u32, h: u32, i: u32, branch: u32) -> f32 {
  let e = hp.g_off + b * hp.g_sb + h * hp.g_sh + i * hp.g_sn + branch * hp.g_sd;
  return ${f16 ? "unpack2x16float(gates[e >> 1u])[e & 1u]" : "gates[e]"};
}
`;
}

/**
 * The top-k list of the compressed pass: `keep(s, x)` inserts summary `s` of score `x` into
 * `best`, kept by descending score, a later summary moving up only past strictly lower scores
 * (ties stay with the earlier); `sort_kept()` then orders the kept ones by index.
 */
function topKWgsl(topK: number): string {
  return `const TOP_K: u32 = ${topK}u;
var<private> best: array<u32, TOP_K>;
var<private> best_score: array<f32, TOP_K>;
var<private> kept: u32;
fn keep(s: u32, x: f32) {
  var at = select(TOP_K, kept, kept < TOP_K);
  kept = min(kept + 1u, TOP_K);
  // NaN is never greater: a NaN score only fills a free place, as on the CPU.
  while (at > 0u && x > best_score[at - 1u]) {
    if (at < TOP_K) {
      best[at] = best[at - 1u];
      best_score[at] = best_score[at - 1u];
    }
    at--;
  }
  if (at < TOP_K) {
    best[at] = s;
    best_score[at] = x;
  }
}
fn sort_kept() {
  for (var n = 1u; n < kept; n++) {
    for (var at = n; at > 0u; at--) {
      let a = best[at - 1u];
      let b = best[at];
      if (a < b) { break; }
      best[at - 1u] = b;
      best[at] = a;
    }
  }
}
`;
}

/** Dims per iteration of the unrolled dimension loops. */
const UNROLL = 8;

/**
 * `body(d)` for `d` in `0..count` (a compile-time size), unrolled `UNROLL` times, the remainder
 * written out. Software adapters cap the loop iterations of an invocation (llvmpipe breaks out
 * after 65535 in all), so a row's per-key dimension loops must iterate rarely.
 */
function forDims(count: number, body: (d: string) => string): string {
  const whole = count - (count % UNROLL);
  const step = (at: string) =>
    Array.from({ length: UNROLL }, (_, n) => body(n ? `${at} + ${n}u` : at)).join(" ");
  const loop = whole > 0 ? `for (var d = 0u; d < ${whole}u; d += ${UNROLL}u) { ${step("d")} }` : "";
  const rest = Array.from({ length: count - whole }, (_, n) => body(`${whole + n}u`)).join(" ");
  return `${loop}${loop && rest ? "\n  " : ""}${rest}`;
}

/** The selected branch: the chosen blocks' keys in order, each key once where blocks overlap. */
const SELECTED_WGSL = `  begin();
  sort_kept();
  var covered = 0u;
  for (var n = 0u; n < kept; n++) {
    let start = best[n] * hp.stride;
    for (var j = max(start, covered); j < start + hp.block; j++) { attend_key(j, kb, vb); }
    covered = start + hp.block;
  }
  finish(ob, weight_of(b, h, i, 1u), true);
`;

/**
 * One invocation per query row `(b, h, i)` of `B·Hq·Nq` (rows of a head consecutive): the three
 * branches, each an online softmax in f32 into `acc`, added to the row of `out` with its weight.
 * A branch with no key adds nothing; a row before the first key is zeros. Grid from
 * `grid(⌈rows / 64⌉)`.
 */
export function rowsWgsl(params: HierarchicalParams): string {
  const { headDim, valueDim, topK } = params;
  const dims = forDims.bind(null, headDim), values = forDims.bind(null, valueDim);
  return `${header(params, "read")}${NEG_WGSL}${weightsWgsl(params)}${
    topK > 0 ? topKWgsl(topK) : ""
  }@group(0) @binding(${HIERARCHY_BINDINGS.out}) var<storage, read_write> out_buf: array<f32>;
var<private> qv: array<f32, ${Math.max(1, headDim)}>;
var<private> acc: array<f32, ${Math.max(1, valueDim)}>;
var<private> m: f32;
var<private> l: f32;
fn begin() {
  m = NEG;
  l = 0.0;
  ${values((d) => `acc[${d}] = 0.0;`)}
}
// Joins a score to the running softmax; returns its weight. The accumulator is rescaled only
// when the maximum grows. A NaN score makes the branch NaN, as on the CPU.
fn weigh(x: f32) -> f32 {
  if (x > m) {
    let c = exp(m - x);
    l *= c;
    ${values((d) => `acc[${d}] *= c;`)}
    m = x;
  }
  let e = exp(x - m);
  l += e;
  return e;
}
fn attend_key(j: u32, kb: u32, vb: u32) {
  let kj = kb + j * p.k_sn;
  let vj = vb + j * p.v_sn;
  var dot = 0.0;
  ${dims((d) => `dot += qv[${d}] * load_k(kj + (${d}) * p.k_sd);`)}
  let e = weigh(dot * p.scale);
  ${values((d) => `acc[${d}] += e * load_v(vj + (${d}) * p.v_sd);`)}
}
// Writes (or adds) weight · acc / l to the row; a branch without keys (l == 0) gives zeros.
fn finish(ob: u32, w: f32, add: bool) {
  let empty = l <= 0.0;
  ${
    values((d) =>
      `{ var o = 0.0; if (!empty) { o = w * (acc[${d}] / l); } if (add) { out_buf[ob + ${d}] += o; } else { out_buf[ob + ${d}] = o; } }`
    )
  }
}
@compute @workgroup_size(${HIERARCHY_WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let row = invocation(id);
  if (row >= hp.total) { return; }
  let i = row % p.q_len;
  let bh = row / p.q_len;
  let b = bh / p.heads;
  let h = bh % p.heads;
  let hk = h / p.group;
  let kvh = b * (p.heads / p.group) + hk;
  let ob = row * DV;
  let pos = i32(p.kv_len) - i32(p.q_len) + i32(i);
  if (pos < 0) {
    for (var d = 0u; d < DV; d++) { out_buf[ob + d] = 0.0; }
    return;
  }
  let last = u32(pos);
  let qb = p.q_off + b * p.q_sb + h * p.q_sh + i * p.q_sn;
  for (var d = 0u; d < D; d++) { qv[d] = load_q(qb + d * p.q_sd); }
  let kb = p.k_off + b * p.k_sb + hk * p.k_sh;
  let vb = p.v_off + b * p.v_sb + hk * p.v_sh;
  // Compressed: the summaries whose whole block ends at or before the query.
  var seen = 0u;
  if (last + 1u >= hp.block) { seen = min(hp.count, (last + 1u - hp.block) / hp.stride + 1u); }
  begin();
  for (var s = 0u; s < seen; s++) {
    let ks = (kvh * hp.count + s) * D;
    let vs = (kvh * hp.count + s) * DV;
    var dot = 0.0;
    ${dims((d) => `dot += qv[${d}] * pk[ks + ${d}];`)}
    let x = dot * p.scale;
    let e = weigh(x);
    ${values((d) => `acc[${d}] += e * pv[vs + ${d}];`)}${topK > 0 ? "\n    keep(s, x);" : ""}
  }
  finish(ob, weight_of(b, h, i, 0u), false);
${topK > 0 ? SELECTED_WGSL : ""}  // Window: the keys last - window < j <= last.
  begin();
  let first = u32(max(0, pos - i32(hp.window) + 1));
  for (var j = first; j <= last; j++) { attend_key(j, kb, vb); }
  finish(ob, weight_of(b, h, i, 2u), true);
}
`;
}
