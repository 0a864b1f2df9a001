/**
 * The hierarchical kernel family (Native Sparse Attention's three branches, see
 * `hierarchical()`): a pool pass writes each KV head's block summaries (mean keys and values,
 * f32), then a rows pass gives each query row one invocation that scores the visible summaries
 * (the compressed branch, an online softmax), keeps the `topK` best, attends to the union of
 * their blocks' full keys, then to the window, and writes `Σ weight · out_branch` in f32.
 * A workgroup's rows share one KV head and neighbouring positions, so they read the summaries
 * and window keys together, a chunk at a time through workgroup memory.
 * Memory: the summaries and the output; no Nq×Nk buffer.
 * @module
 */
import type { DType } from "../../../core/tensor_desc.ts";
import { inputsWgsl, NEG_WGSL, paramsWgsl } from "./_common_wgsl.ts";
import {
  forSlots,
  globalRowsWgsl,
  slots,
  softmaxWgsl,
  topKWgsl,
  weightsWgsl,
} from "./_hierarchical_row_wgsl.ts";

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
  /**
   * Workgroup memory the rows pass may use for its chunks (the device's
   * `maxComputeWorkgroupStorageSize`). Default: 16384, the least any device offers.
   */
  readonly workgroupBytes?: number;
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
 * count, the work a dispatch runs (invocations of the pool pass, workgroups of the rows pass),
 * and the gates' offset and strides.
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

/**
 * Workgroup memory the rows pass stages through, at most. Less than devices offer: WebGPU
 * zero-fills workgroup arrays, and llvmpipe compiles that fill in time quadratic in their
 * elements (256 vec4s take 0.5 s, 512 take 3 s); longer chunks would only save barriers.
 */
const STAGING_BYTES = 4096;

/**
 * Rows per chunk of the rows pass: as many key and value rows (f32 vec4 slots) as fit in the
 * staging budget and the device's workgroup memory, at least 1.
 */
export function chunkRows(params: HierarchicalParams): number {
  const bytes = Math.min(STAGING_BYTES, params.workgroupBytes ?? 16384);
  const perRow = 16 * (slots(params.headDim) + slots(params.valueDim));
  return Math.max(1, Math.min(HIERARCHY_WORKGROUP, Math.floor(bytes / perRow)));
}

/**
 * The chunk shared by a workgroup, rows as vec4 slots (`D4`, `DV4` per row, zero-padded):
 * `stage_summaries` and `stage_keys` copy rows into it, each invocation every 64th slot, and
 * `attend_staged(c)` joins staged row `c` to the calling row's softmax and returns its score.
 */
function stagingWgsl(params: HierarchicalParams): string {
  const [d4, dv4, chunk] = [slots(params.headDim), slots(params.valueDim), chunkRows(params)];
  const keys = forSlots.bind(null, d4), values = forSlots.bind(null, dv4);
  const wg = `${HIERARCHY_WORKGROUP}u`;
  return `const CHUNK: u32 = ${chunk}u;
const D4: u32 = ${d4}u;
const DV4: u32 = ${dv4}u;
var<workgroup> chunk_k: array<vec4<f32>, ${d4 * chunk}>;
var<workgroup> chunk_v: array<vec4<f32>, ${dv4 * chunk}>;
// Summaries at .. at + n - 1, counted over all KV heads.
fn stage_summaries(at: u32, n: u32, lid: u32) {
  for (var e = lid; e < n * D4; e += ${wg}) { chunk_k[e] = pk4(at + e / D4, e % D4); }
  for (var e = lid; e < n * DV4; e += ${wg}) { chunk_v[e] = pv4(at + e / DV4, e % DV4); }
}
// Keys and values j0 .. j0 + n - 1 of the head at kb, vb.
fn stage_keys(kb: u32, vb: u32, j0: u32, n: u32, lid: u32) {
  for (var e = lid; e < n * D4; e += ${wg}) { chunk_k[e] = k4(kb + (j0 + e / D4) * p.k_sn, e % D4); }
  for (var e = lid; e < n * DV4; e += ${wg}) {
    chunk_v[e] = v4(vb + (j0 + e / DV4) * p.v_sn, e % DV4);
  }
}
fn attend_staged(c: u32) -> f32 {
  let kc = c * D4;
  let vc = c * DV4;
  var qk = 0.0;
  ${keys((s) => `qk += dot(qv[${s}], chunk_k[kc + ${s}]);`)}
  let x = qk * p.scale;
  let e = weigh(x);
  ${values((s) => `acc[${s}] += e * chunk_v[vc + ${s}];`)}
  return x;
}
`;
}

/**
 * The branches, each from `begin()` to the row's softmax state. The shared ones loop over
 * chunks to a bound the workgroup agrees on (its last row sees the most summaries; its rows'
 * windows span from the first row's to the last row's), so that every invocation reaches every
 * barrier; a row skips the staged rows it does not see, in step with the others (the same
 * staged row at once: a broadcast read). `pos` is the row's position among the keys, -1 for an
 * invocation past the rows.
 */
const BRANCHES_WGSL = `fn visible(pos: i32) -> u32 {
  if (pos + 1 < i32(hp.block)) { return 0u; }
  return min(hp.count, u32(pos + 1 - i32(hp.block)) / hp.stride + 1u);
}
fn compressed_branch(kvh: u32, lid: u32, pos: i32, last_pos: i32) {
  begin();
  let seen = visible(pos);
  let most = visible(last_pos);
  for (var s0 = 0u; s0 < most; s0 += CHUNK) {
    let n = min(CHUNK, most - s0);
    stage_summaries(kvh * hp.count + s0, n, lid);
    workgroupBarrier();
    for (var c = 0u; c < n; c++) {
      if (s0 + c < seen) { keep(s0 + c, attend_staged(c)); }
    }
    workgroupBarrier();
  }
}
fn window_branch(kb: u32, vb: u32, lid: u32, pos: i32, first_pos: i32, last_pos: i32) {
  begin();
  let own = max(0, pos - i32(hp.window) + 1);
  let end = u32(max(0, last_pos + 1));
  for (var j0 = u32(max(0, first_pos - i32(hp.window) + 1)); j0 < end; j0 += CHUNK) {
    let n = min(CHUNK, end - j0);
    stage_keys(kb, vb, j0, n, lid);
    workgroupBarrier();
    for (var c = 0u; c < n; c++) {
      let j = i32(j0 + c);
      if (own <= j && j <= pos) { _ = attend_staged(c); }
    }
    workgroupBarrier();
  }
}
`;

/** The selected branch: the chosen blocks' keys in order, each key once where blocks overlap. */
const SELECTED_WGSL = `fn selected_branch(kb: u32, vb: u32) {
  begin();
  sort_kept();
  var covered = 0u;
  for (var n = 0u; n < kept; n++) {
    let start = best[n] * hp.stride;
    for (var j = max(start, covered); j < start + hp.block; j++) { attend_key(j, kb, vb); }
    covered = start + hp.block;
  }
}
`;

/**
 * One invocation per query row, 64 rows per workgroup, all of one KV head: its `B·Hkv` heads
 * each have `⌈group·Nq / 64⌉` workgroups (`hp.total` in all), and within one the rows go by
 * position, the heads sharing that KV head innermost (they read the same keys). Each branch is
 * an online softmax in f32, added to the row of `out` with its weight. A branch with no key
 * adds nothing; a row before the first key is zeros. Grid from `grid(hp.total)`.
 */
export function rowsWgsl(params: HierarchicalParams): string {
  const { headDim, valueDim, dtype, gates, topK } = params;
  const wg = `${HIERARCHY_WORKGROUP}u`;
  const out = HIERARCHY_BINDINGS.out;
  return `${header(params, "read")}${NEG_WGSL}${
    weightsWgsl(HIERARCHY_BINDINGS.weights, dtype, gates)
  }
@group(0) @binding(${out}) var<storage, read_write> out_buf: array<f32>;
${softmaxWgsl(headDim, valueDim)}${globalRowsWgsl(headDim, valueDim)}${topKWgsl(topK)}${
    stagingWgsl(params)
  }${BRANCHES_WGSL}${topK > 0 ? SELECTED_WGSL : ""}@compute @workgroup_size(${HIERARCHY_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tile = wid.x + wid.y * 65535u;
  if (tile >= hp.total) { return; }
  let head_rows = p.group * p.q_len;
  let tiles = (head_rows + ${wg} - 1u) / ${wg};
  let kvh = tile / tiles;
  let b = kvh / (p.heads / p.group);
  let hk = kvh % (p.heads / p.group);
  let r0 = (tile % tiles) * ${wg};
  let r = r0 + lid;
  let valid = r < head_rows;
  let i = r / p.group;
  let h = hk * p.group + r % p.group;
  let shift = i32(p.kv_len) - i32(p.q_len);
  let pos = select(-1, shift + i32(i), valid);
  let first_pos = shift + i32(r0 / p.group);
  let last_pos = shift + i32((min(r0 + ${wg}, head_rows) - 1u) / p.group);
  if (pos >= 0) { load_query(p.q_off + b * p.q_sb + h * p.q_sh + i * p.q_sn); }
  let kb = p.k_off + b * p.k_sb + hk * p.k_sh;
  let vb = p.v_off + b * p.v_sb + hk * p.v_sh;
  let ob = ((b * p.heads + h) * p.q_len + i) * DV;
  compressed_branch(kvh, lid, pos, last_pos);
  if (valid) {
    finish(ob, weight_of(b, h, i, 0u), false);${
    topK > 0 ? "\n    selected_branch(kb, vb);\n    finish(ob, weight_of(b, h, i, 1u), true);" : ""
  }
  }
  window_branch(kb, vb, lid, pos, first_pos, last_pos);
  if (valid) { finish(ob, weight_of(b, h, i, 2u), true); }
}
`;
}
