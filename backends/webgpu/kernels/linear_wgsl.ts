/**
 * The linear kernel family (see `linear()`), as three passes over chunks of `C` keys, each with
 * its own state `[S | z]` of `F × (Dv + 1)` entries per (batch, state head). The key-side state
 * depends only on the keys, values and decay, so the `sharers` query heads of a KV head with
 * equal decays share one state head (GQA: the key-side work runs once per KV head):
 * 1. chunk states: every chunk's keys folded on their own, key `j` weighted `γ^(end−1−j)` — one
 *    invocation per (chunk, state entry), `C` steps each;
 * 2. scan: per (batch, state head, state entry), the chunks in order, replacing each chunk's state
 *    by the state of this call's keys before it, and writing each sharing query head's new state
 *    (its input state decayed by `γ^Nk`, plus this call's keys) — `Nk / C` steps each;
 * 3. output: per (query row, value column), `φ(q_i)ᵀ` times the state before the row's chunk
 *    decayed to its position and the head's input state decayed by `γ^(p+1)`, plus the earlier
 *    keys of its own chunk weighted by their scores (causal: a scores pass writes them first, `C`
 *    per query row); or `φ(q_i)ᵀ` times the final state (non-causal); over `φ(q_i)ᵀ z + ε` when
 *    normalizing.
 * Every pass is parallel over heads and state entries or rows, and loops at most
 * `max(C, 2F + C, Nk / C)` times per invocation. Memory: one state per chunk
 * (`B·Hs·⌈Nk/C⌉·F·(Dv+1)` f32, `Hs` state heads) and `C` scores per query row; no Nq×Nk buffer.
 * @module
 */
import {
  LINEAR_BINDINGS,
  LINEAR_WORKGROUP,
  linearHeader,
  type LinearParams,
} from "./_linear_features_wgsl.ts";
import { phiWgsl } from "./_linear_features_wgsl.ts";

export {
  LINEAR_BINDINGS,
  LINEAR_FIELDS,
  LINEAR_WORKGROUP,
  type LinearParams,
  performerFeaturesWgsl,
} from "./_linear_features_wgsl.ts";
export { featureLiterals } from "./_linear_features_wgsl.ts";

function common(params: LinearParams, workAccess: "read" | "read_write"): string {
  const { decay, work } = LINEAR_BINDINGS;
  return `${linearHeader(params)}@group(0) @binding(${decay}) var<storage, read> decay: array<f32>;
@group(0) @binding(${work}) var<storage, ${workAccess}> work: array<f32>;
@group(0) @binding(${LINEAR_BINDINGS.stateIn}) var<storage, read> state_in: array<f32>;
fn state_heads() -> u32 { return p.heads / lp.sharers; }
fn input_state(b: u32, h: u32, fw: u32) -> f32 {
  return state_in[lp.s_off + b * lp.s_sb + h * lp.s_sh + (fw / W) * lp.s_sf + (fw % W) * lp.s_sc];
}
fn value(b: u32, hk: u32, j: u32, c: u32) -> f32 {
  if (c >= DV) { return 1.0; }
  return load_v(p.v_off + b * p.v_sb + hk * p.v_sh + j * p.v_sn + c * p.v_sd);
}
`;
}

/**
 * Invocation `e` of `B·Hs·T·F·W` (entries fastest) as the state entry `(f, c)` of chunk `t`
 * (keys `start..end−1`) of state head `h` (the first of its sharers) of batch `b`: the chunk-state
 * passes (this file's and the backward's moments) read it.
 */
export const CHUNK_ENTRY = `  let c = e % W;
  let f = (e / W) % F;
  let t = (e / (W * F)) % lp.chunks;
  let bs = e / (W * F * lp.chunks);
  let h = (bs % state_heads()) * lp.sharers;
  let b = bs / state_heads();
  let hk = h / p.group;
  let g = decay[h];
  let start = t * lp.chunk;
  let end = min(start + lp.chunk, p.kv_len);
`;

/**
 * Pass 1: invocation `e` of `B·Hs·T·F·W` (entries fastest) writes chunk `t`'s own state entry
 * `(f, c)`: `Σ_j γ^(end−1−j) φ(k_j)[f]·v_j[c]` (`v_j[Dv] = 1`) into `work[e]`.
 */
export function chunkStatesWgsl(params: LinearParams): string {
  return `${common(params, "read_write")}${phiWgsl(params)}
@compute @workgroup_size(${LINEAR_WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let e = invocation(id);
  if (e >= lp.total) { return; }
${CHUNK_ENTRY}  var acc = 0.0;
  for (var j = start; j < end; j++) {
    acc = acc * g + phi_k(k_row(b, hk, j), f) * value(b, hk, j, c);
  }
  work[e] = acc;
}
`;
}

/**
 * Pass 2: invocation `e` of `B·Hs·F·W` scans its entry over the chunks: chunk `t`'s slot gets
 * the state of this call's keys before it, then the running state is decayed by `γ^len(t)` and
 * gains chunk `t`'s own. Each sharing query head's new state, its input state (read through its
 * strides) decayed by `γ^Nk` plus the end, is written `[B, Hq, F, W]` contiguous.
 */
export function scanWgsl(params: LinearParams): string {
  const { out } = LINEAR_BINDINGS;
  return `${
    common(params, "read_write")
  }@group(0) @binding(${out}) var<storage, read_write> state_out: array<f32>;
@compute @workgroup_size(${LINEAR_WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let e = invocation(id);
  if (e >= lp.total) { return; }
  let fw = e % (F * W);
  let bs = e / (F * W);
  let b = bs / state_heads();
  let h0 = (bs % state_heads()) * lp.sharers;
  let g = decay[h0];
  var s = 0.0;
  for (var t = 0u; t < lp.chunks; t++) {
    let at = (bs * lp.chunks + t) * F * W + fw;
    let own = work[at];
    work[at] = s;
    let len = min(lp.chunk, p.kv_len - t * lp.chunk);
    s = s * powi(g, len) + own;
  }
  let all = powi(g, p.kv_len);
  for (var m = 0u; m < lp.sharers; m++) {
    var carried = 0.0;
    if (lp.has_state == 1u) { carried = all * input_state(b, h0 + m, fw); }
    state_out[(b * p.heads + h0 + m) * F * W + fw] = s + carried;
  }
}
`;
}

/**
 * Causal plans, before pass 3: invocation `e` of `B·Hq·Nq·C` writes row `i`'s weight of the
 * `jl`-th key of its chunk, `γ^(p−j)·φ(q_i)·φ(k_j)` (0 past the row's position), so the output
 * pass does not recompute each `F`-long product once per value column.
 */
export function scoresWgsl(params: LinearParams): string {
  return `${
    linearHeader(params)
  }@group(0) @binding(${LINEAR_BINDINGS.decay}) var<storage, read> decay: array<f32>;
@group(0) @binding(${LINEAR_BINDINGS.scores}) var<storage, read_write> scores: array<f32>;
${phiWgsl(params)}
@compute @workgroup_size(${LINEAR_WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let e = invocation(id);
  if (e >= lp.total) { return; }
  let jl = e % lp.chunk;
  let i = (e / lp.chunk) % p.q_len;
  let bh = e / (lp.chunk * p.q_len);
  let h = bh % p.heads;
  let b = bh / p.heads;
  if (i + p.kv_len < p.q_len) {
    scores[e] = 0.0;
    return;
  }
  let pos = i + p.kv_len - p.q_len;
  let j = (pos / lp.chunk) * lp.chunk + jl;
  if (j > pos) {
    scores[e] = 0.0;
    return;
  }
  let qr = q_row(b, h, i);
  let kr = k_row(b, h / p.group, j);
  var s = 0.0;
  for (var f = 0u; f < F; f++) { s += phi_q(qr, f) * phi_k(kr, f); }
  scores[e] = s * powi(decay[h], pos - j);
}
`;
}

/** Pass 3, causal: the state before the row's chunk, decayed, plus the chunk's earlier keys. */
function causalBody(): string {
  return `  if (i + p.kv_len < p.q_len) {
    out[e] = 0.0;
    return;
  }
  let pos = i + p.kv_len - p.q_len;
  let t = pos / lp.chunk;
  let start = t * lp.chunk;
  let g = decay[h];
  let at = ((b * state_heads() + h / lp.sharers) * lp.chunks + t) * F * W;
  for (var f = 0u; f < F; f++) {
    let a = phi_q(qr, f);
    num += a * work[at + f * W + c];
    den += a * work[at + f * W + DV];
  }
  let carried = powi(g, pos - start + 1u);
  num *= carried;
  den *= carried;
  if (lp.has_state == 1u) {
    let earlier = powi(g, pos + 1u);
    for (var f = 0u; f < F; f++) {
      let a = phi_q(qr, f) * earlier;
      num += a * input_state(b, h, f * W + c);
      den += a * input_state(b, h, f * W + DV);
    }
  }
  let hk = h / p.group;
  let row = (bh * p.q_len + i) * lp.chunk;
  for (var j = start; j <= pos; j++) {
    let s = scores[row + j - start];
    num += s * value(b, hk, j, c);
    den += s;
  }
`;
}

/** Pass 3, non-causal: the final state (bound as `work`), unless there are no keys at all. */
function nonCausalBody(): string {
  return `  if (p.kv_len == 0u && lp.has_state == 0u) {
    out[e] = 0.0;
    return;
  }
  let at = bh * F * W;
  for (var f = 0u; f < F; f++) {
    let a = phi_q(qr, f);
    num += a * work[at + f * W + c];
    den += a * work[at + f * W + DV];
  }
`;
}

/**
 * Pass 3: invocation `e` of `B·Hq·Nq·Dv` (columns fastest) writes `out[e]` (f32) for query row
 * `i`, column `c`: causal rows read the chunk states `work` after the scan, non-causal rows the
 * new state, bound at the same place. Rows before the first key (`Nq > Nk`, causal) are zeros.
 */
export function outputWgsl(params: LinearParams): string {
  const scores = params.causal
    ? `@group(0) @binding(${LINEAR_BINDINGS.scores}) var<storage, read> scores: array<f32>;\n`
    : "";
  return `${common(params, "read")}${
    phiWgsl(params)
  }${scores}@group(0) @binding(${LINEAR_BINDINGS.out}) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${LINEAR_WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let e = invocation(id);
  if (e >= lp.total) { return; }
  let c = e % DV;
  let i = (e / DV) % p.q_len;
  let bh = e / (DV * p.q_len);
  let h = bh % p.heads;
  let b = bh / p.heads;
  let qr = q_row(b, h, i);
  var num = 0.0;
  var den = 0.0;
${
    params.causal
      ? causalBody()
      : nonCausalBody()
  }  out[e] = select(num, num / (den + lp.epsilon), lp.normalize == 1u);
}
`;
}
