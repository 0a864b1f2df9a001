/**
 * Per-row WGSL fragments of the hierarchical rows pass: one invocation's running softmax in f32
 * (`begin`, `weigh`, `finish`), the top-k list of the compressed branch, the branch weights,
 * and the unrolled dimension loops everything above is written with.
 * @module
 */
import type { DType } from "../../../core/tensor_desc.ts";

/** vec4 slots of a row of `dim` elements: rows are padded with zeros to whole vec4s. */
export function slots(dim: number): number {
  return Math.max(1, Math.ceil(dim / 4));
}

/** Slots per iteration of the unrolled slot loops (16 dims). */
const UNROLL = 4;

/**
 * `body(s)` for slot `s` in `0..count` (a compile-time size), unrolled `UNROLL` times, the
 * remainder written out. Software adapters cap the loop iterations of an invocation (llvmpipe
 * breaks out after 65535 in all), so a row's per-key loops over its dims must iterate rarely.
 */
export function forSlots(count: number, body: (s: string) => string): string {
  const whole = count - (count % UNROLL);
  const step = (at: string) =>
    Array.from({ length: UNROLL }, (_, n) => body(n ? `${at} + ${n}u` : at)).join(" ");
  const loop = whole > 0 ? `for (var s = 0u; s < ${whole}u; s += ${UNROLL}u) { ${step("s")} }` : "";
  const rest = Array.from({ length: count - whole }, (_, n) => body(`${whole + n}u`)).join(" ");
  return `${loop}${loop && rest ? "\n  " : ""}${rest}`;
}

/**
 * `fn name(row: u32, s: u32) -> vec4<f32>`: slot `s` of a row of `dim` elements, element `e`
 * read by `load("row", e)`; elements past `dim` are 0 and not read, so that padding adds nothing.
 */
function slotLoaderWgsl(name: string, dim: number, load: (e: string) => string): string {
  const lanes = [0, 1, 2, 3].map((t) => {
    const at = t ? `d + ${t}u` : "d";
    return dim % 4 === 0
      ? load(at)
      : `select(0.0, ${load(`min(${at}, ${dim - 1}u)`)}, ${at} < ${dim}u)`;
  });
  return `fn ${name}(row: u32, s: u32) -> vec4<f32> {
  let d = s * 4u;
  return vec4<f32>(${lanes.join(", ")});
}
`;
}

/**
 * Reading rows from global memory in vec4 slots: `q4`, `k4`, `v4` (strided, f32 or f16, the
 * row's first element given), `pk4`, `pv4` (pooled summaries, the row's index given);
 * `load_query(qb)` fills `qv`; `attend_key(j, kb, vb)` joins key `j` of the head at `kb`, `vb`
 * to the row's softmax (the selected branch, each row its own blocks).
 */
export function globalRowsWgsl(headDim: number, valueDim: number): string {
  const keys = forSlots.bind(null, slots(headDim)), values = forSlots.bind(null, slots(valueDim));
  return `${slotLoaderWgsl("q4", headDim, (e) => `load_q(row + (${e}) * p.q_sd)`)}${
    slotLoaderWgsl("k4", headDim, (e) => `load_k(row + (${e}) * p.k_sd)`)
  }${slotLoaderWgsl("v4", valueDim, (e) => `load_v(row + (${e}) * p.v_sd)`)}${
    slotLoaderWgsl("pk4", headDim, (e) => `pk[row * D + ${e}]`)
  }${slotLoaderWgsl("pv4", valueDim, (e) => `pv[row * DV + ${e}]`)}fn load_query(qb: u32) {
  for (var s = 0u; s < ${slots(headDim)}u; s++) { qv[s] = q4(qb, s); }
}
fn attend_key(j: u32, kb: u32, vb: u32) {
  let kj = kb + j * p.k_sn;
  let vj = vb + j * p.v_sn;
  var qk = 0.0;
  ${keys((s) => `qk += dot(qv[${s}], k4(kj, ${s}));`)}
  let e = weigh(qk * p.scale);
  ${values((s) => `acc[${s}] += e * v4(vj, ${s});`)}
}
`;
}

/**
 * `weight_of(b, h, i, branch)`: the per-head weights, or the gates (strided, f32 or f16) at
 * `binding`.
 */
export function weightsWgsl(binding: number, dtype: DType, gates: boolean): string {
  const declare = `@group(0) @binding(${binding}) var<storage, read>`;
  if (!gates) {
    return `${declare} weights: array<f32>;
fn weight_of(b: u32, h: u32, i: u32, branch: u32) -> f32 { return weights[h * 3u + branch]; }
`;
  }
  const f16 = dtype === "f16";
  return `${declare} gates: array<${f16 ? "u32" : "f32"}>;
fn weight_of(b: u32, h: u32, i: u32, branch: u32) -> f32 {
  let e = hp.g_off + b * hp.g_sb + h * hp.g_sh + i * hp.g_sn + branch * hp.g_sd;
  return ${f16 ? "unpack2x16float(gates[e >> 1u])[e & 1u]" : "gates[e]"};
}
`;
}

/**
 * The top-k list of the compressed branch: `keep(s, x)` inserts summary `s` of score `x` into
 * `best`, kept by descending score, a later summary moving up only past strictly lower scores
 * (ties stay with the earlier; summaries arrive in order); `sort_kept()` then orders the kept
 * ones by index. With `topK` 0, `keep` keeps nothing.
 */
export function topKWgsl(topK: number): string {
  if (topK === 0) return "fn keep(s: u32, x: f32) {}\n";
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

/**
 * One row's branch state in private memory, in vec4 slots: its query `qv`, and an online
 * softmax (`m`, `l`, `acc`). `weigh(x)` joins a score; `finish` writes or adds the branch to
 * `out_buf`.
 */
export function softmaxWgsl(headDim: number, valueDim: number): string {
  const values = forSlots.bind(null, slots(valueDim));
  const lanes = [0, 1, 2, 3].map((t) => {
    const write =
      `let d = s * 4u + ${t}u; if (add) { out_buf[ob + d] += o[${t}]; } else { out_buf[ob + d] = o[${t}]; }`;
    return valueDim % 4 === 0 || t === 0 ? `{ ${write} }` : `if (s * 4u + ${t}u < DV) { ${write} }`;
  });
  return `var<private> qv: array<vec4<f32>, ${slots(headDim)}>;
var<private> acc: array<vec4<f32>, ${slots(valueDim)}>;
var<private> m: f32;
var<private> l: f32;
fn begin() {
  m = NEG;
  l = 0.0;
  ${values((s) => `acc[${s}] = vec4<f32>();`)}
}
// Joins a score to the running softmax; returns its weight. The accumulator is rescaled only
// when the maximum grows. A NaN score makes the branch NaN, as on the CPU.
fn weigh(x: f32) -> f32 {
  if (x > m) {
    let c = exp(m - x);
    l *= c;
    ${values((s) => `acc[${s}] *= c;`)}
    m = x;
  }
  let e = exp(x - m);
  l += e;
  return e;
}
// Writes (or adds) the dims of slot s of the row at ob.
fn put(ob: u32, s: u32, o: vec4<f32>, add: bool) {
  ${lanes.join("\n  ")}
}
// Writes (or adds) weight · acc / l to the row; a branch without keys (l == 0) gives zeros.
fn finish(ob: u32, w: f32, add: bool) {
  let empty = l <= 0.0;
  ${values((s) => `put(ob, ${s}, select(w * (acc[${s}] / l), vec4<f32>(), empty), add);`)}
}
`;
}
