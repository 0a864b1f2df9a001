/**
 * The query-side passes of linear attention's backward pass (see `linear_backward_wgsl.ts`): each
 * row's adjoint, its intra-chunk weights, `dφ(q)`, then the query-side states `R` per chunk and
 * their reverse scan. Rows that see no key have a zero adjoint, so every later pass may skip them.
 * @module
 */
import { LINEAR_BINDINGS, LINEAR_WORKGROUP, type LinearParams } from "./_linear_features_wgsl.ts";
import {
  backwardPrelude,
  GRAD_FIELDS,
  KEY_SIDE,
  LINEAR_BACKWARD_BINDINGS as LB,
  storage,
} from "./_linear_backward_common_wgsl.ts";

const MAIN = `@compute @workgroup_size(${LINEAR_WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let e = invocation(id);
  if (e >= lp.total) { return; }
`;

/** `dOut` through its view, as f32. */
function gradWgsl(params: LinearParams): string {
  const type = params.dtype === "f16" ? "u32" : "f32";
  const load = params.dtype === "f16" ? "unpack2x16float(g_buf[i >> 1u])[i & 1u]" : "g_buf[i]";
  return `struct GradView {
${GRAD_FIELDS.map((f) => `  ${f}: u32,`).join("\n")}
}
@group(0) @binding(${LB.gradView}) var<uniform> gv: GradView;
${storage(LB.grad, "g_buf", "read", type)}fn load_g(i: u32) -> f32 { return ${load}; }
fn grad_at(b: u32, h: u32, i: u32, d: u32) -> f32 {
  return load_g(gv.off + b * gv.sb + h * gv.sh + i * gv.sn + d * gv.sd);
}
`;
}

/**
 * Invocation `e` of `B·Hq·Nq` (one per row): recomputes the row's `dO·num` and denominator from the
 * key-side state before its chunk (the final state when non-causal) and its chunk's scores, then
 * writes the adjoint `a_i = [dO/den; −(dO·out)/den]` (`[dO; 0]` unnormalized, 0 for a row that
 * sees no key).
 */
export function adjointWgsl(params: LinearParams): string {
  const state = params.causal
    ? `if (i + p.kv_len < p.q_len) {
    for (var w = 0u; w < W; w++) { adj[e * W + w] = 0.0; }
    return;
  }
  let pos = row_pos(i);
  let t = pos / lp.chunk;
  let start = t * lp.chunk;
  let at = ((b * state_heads() + h / lp.sharers) * lp.chunks + t) * F * W;`
    : `if (p.kv_len == 0u) {
    for (var w = 0u; w < W; w++) { adj[e * W + w] = 0.0; }
    return;
  }
  let at = bh * F * W;`;
  const intra = params.causal
    ? `  let carried = powi(decay[h], pos - start + 1u);
  dn *= carried;
  den *= carried;
  for (var j = start; j <= pos; j++) {
    let s = scores[e * lp.chunk + j - start];
    var vg = 0.0;
    for (var d = 0u; d < DV; d++) { vg += value(b, hk, j, d) * grad_at(b, h, i, d); }
    dn += s * vg;
    den += s;
  }
`
    : "";
  return `${backwardPrelude(params)}${gradWgsl(params)}${
    params.causal ? KEY_SIDE.decay + KEY_SIDE.scores : ""
  }${KEY_SIDE.work}${
    storage(LB.adjoint, "adj", "read_write")
  }fn row_pos(i: u32) -> u32 { return i + p.kv_len - p.q_len; }
${MAIN}  let i = e % p.q_len;
  let bh = e / p.q_len;
  let h = bh % p.heads;
  let b = bh / p.heads;
  let hk = h / p.group;
  ${state}
  let qr = q_row(b, h, i);
  var dn = 0.0;
  var den = 0.0;
  for (var f = 0u; f < F; f++) {
    let a = phi_q(qr, f);
    var sg = 0.0;
    for (var d = 0u; d < DV; d++) { sg += work[at + f * W + d] * grad_at(b, h, i, d); }
    dn += a * sg;
    den += a * work[at + f * W + DV];
  }
${intra}  if (lp.normalize == 1u) {
    let total = den + lp.epsilon;
    for (var d = 0u; d < DV; d++) { adj[e * W + d] = grad_at(b, h, i, d) / total; }
    adj[e * W + DV] = -(dn / total) / total;
  } else {
    for (var d = 0u; d < DV; d++) { adj[e * W + d] = grad_at(b, h, i, d); }
    adj[e * W + DV] = 0.0;
  }
}
`;
}

/**
 * Causal plans: invocation `e` of `B·Hq·Nq·C` writes row `i`'s weight of the `jl`-th key of its
 * chunk, `γ^(p−j)·a_i·[v_j; 1]` (0 past the row's position), the intra-chunk share of `dφ(q)`
 * and `dφ(k)` per feature.
 */
export function weightsWgsl(params: LinearParams): string {
  return `${backwardPrelude(params, false)}${KEY_SIDE.decay}${storage(LB.adjoint, "adj")}${
    storage(LINEAR_BINDINGS.out, "out", "read_write")
  }${MAIN}  let jl = e % lp.chunk;
  let r = e / lp.chunk;
  let i = r % p.q_len;
  let bh = r / p.q_len;
  let h = bh % p.heads;
  let b = bh / p.heads;
  if (i + p.kv_len < p.q_len) {
    out[e] = 0.0;
    return;
  }
  let pos = i + p.kv_len - p.q_len;
  let j = (pos / lp.chunk) * lp.chunk + jl;
  if (j > pos) {
    out[e] = 0.0;
    return;
  }
  var x = 0.0;
  for (var w = 0u; w < W; w++) { x += value(b, h / p.group, j, w) * adj[r * W + w]; }
  out[e] = x * powi(decay[h], pos - j);
}
`;
}

/**
 * Invocation `e` of `B·Hq·Nq·F` writes `dφ(q_i)[f]`: the key-side state before the row's chunk,
 * decayed to the row, times `a_i`, plus the chunk's earlier keys' features by their weights;
 * non-causal, the final state times `a_i`.
 */
export function dPhiQWgsl(params: LinearParams): string {
  const body = params.causal
    ? `  if (i + p.kv_len < p.q_len) {
    out[e] = 0.0;
    return;
  }
  let pos = i + p.kv_len - p.q_len;
  let t = pos / lp.chunk;
  let start = t * lp.chunk;
  let at = ((b * state_heads() + h / lp.sharers) * lp.chunks + t) * F * W + f * W;
  var x = 0.0;
  for (var w = 0u; w < W; w++) { x += work[at + w] * adj[r * W + w]; }
  x *= powi(decay[h], pos - start + 1u);
  let hk = h / p.group;
  for (var j = start; j <= pos; j++) {
    x += weights[r * lp.chunk + j - start] * phi_k(k_row(b, hk, j), f);
  }
  out[e] = x;`
    : `  let at = bh * F * W + f * W;
  var x = 0.0;
  for (var w = 0u; w < W; w++) { x += work[at + w] * adj[r * W + w]; }
  out[e] = x;`;
  const reads = params.causal ? KEY_SIDE.decay + storage(LB.weights, "weights") : "";
  return `${backwardPrelude(params)}${reads}${KEY_SIDE.work}${storage(LB.adjoint, "adj")}${
    storage(LINEAR_BINDINGS.out, "out", "read_write")
  }${MAIN}  let f = e % F;
  let r = e / F;
  let i = r % p.q_len;
  let bh = r / p.q_len;
  let h = bh % p.heads;
  let b = bh / p.heads;
${body}
}
`;
}

/**
 * Invocation `e` of `B·Hq·T·F·W` (entries fastest) writes chunk `t`'s own query-side state entry:
 * `Σ γ^(p_i − start)·φ(q_i)[f]·a_i[w]` over the rows at positions in the chunk (Horner from the
 * chunk's end); non-causal, `T` chunks of `C` rows each, unweighted.
 */
export function queryStatesWgsl(params: LinearParams): string {
  const body = params.causal
    ? `  let start = t * lp.chunk;
  let end = min(start + lp.chunk, p.kv_len);
  let low = max(start, first_pos());
  let g = decay[h];
  var acc = 0.0;
  for (var pos = end; pos > low; pos--) {
    let i = row_at(pos - 1u);
    acc = acc * g + phi_q(q_row(b, h, i), f) * adj[(bh * p.q_len + i) * W + w];
  }
  if (low < end) { acc *= powi(g, low - start); }`
    : `  let start = t * lp.chunk;
  let end = min(start + lp.chunk, p.q_len);
  var acc = 0.0;
  for (var i = start; i < end; i++) {
    acc += phi_q(q_row(b, h, i), f) * adj[(bh * p.q_len + i) * W + w];
  }`;
  return `${backwardPrelude(params)}${params.causal ? KEY_SIDE.decay : ""}${
    storage(LB.adjoint, "adj")
  }${storage(LINEAR_BINDINGS.out, "out", "read_write")}${MAIN}  let w = e % W;
  let f = (e / W) % F;
  let t = (e / (W * F)) % lp.chunks;
  let bh = e / (W * F * lp.chunks);
  let h = bh % p.heads;
  let b = bh / p.heads;
${body}
  out[e] = acc;
}
`;
}

/**
 * Invocation `e` of `B·Hq·F·W` scans its entry over the chunks in reverse: chunk `t`'s slot gets
 * the state of the queries after it, decayed to the chunk's end, then the running state is decayed
 * by `γ^len(t)` and gains chunk `t`'s own. Non-causal plans write the total (every query) instead.
 */
export function reverseScanWgsl(params: LinearParams): string {
  const step = params.causal
    ? `let len = min(lp.chunk, p.kv_len - (t - 1u) * lp.chunk);
    s = own + s * powi(decay[bh % p.heads], len);`
    : "s += own;\n    _ = p.heads; // every pass binds the parameter block";
  const reads = params.causal
    ? KEY_SIDE.decay + storage(LB.queryStates, "rs", "read_write")
    : storage(LB.queryStates, "rs") + storage(LB.queryTotal, "total", "read_write");
  return `${backwardPrelude(params, false)}${reads}${MAIN}  let fw = e % (F * W);
  let bh = e / (F * W);
  var s = 0.0;
  for (var t = lp.chunks; t > 0u; t--) {
    let at = (bh * lp.chunks + t - 1u) * F * W + fw;
    let own = rs[at];
    ${params.causal ? "rs[at] = s;\n    " : ""}${step}
  }
${params.causal ? "" : "  total[e] = s;\n"}}
`;
}

/**
 * Causal plans with a decay: invocation `e` of `B·Hq·Nq` writes row `i`'s share of `γ·∂loss/∂γ`,
 * `Σ_j dA_ij·A_ij·(p − j)`: for the earlier chunks' keys, `γ^(p−start+1)·φ(q_i)ᵀ((p − start)·S + M)·a_i`
 * with the key-side state `S` and moment `M` before the chunk (`p − j` split at the chunk's start,
 * so no two large sums cancel), plus the chunk's keys by their scores times `(p − j)`.
 */
export function rowTermsWgsl(params: LinearParams): string {
  return `${backwardPrelude(params)}${KEY_SIDE.decay}${KEY_SIDE.scores}${KEY_SIDE.work}${
    storage(LB.moments, "moments")
  }${storage(LB.adjoint, "adj")}${
    storage(LB.terms, "terms", "read_write")
  }${MAIN}  let i = e % p.q_len;
  let bh = e / p.q_len;
  let h = bh % p.heads;
  let b = bh / p.heads;
  let hk = h / p.group;
  if (i + p.kv_len < p.q_len) {
    terms[e] = 0.0;
    return;
  }
  let pos = i + p.kv_len - p.q_len;
  let t = pos / lp.chunk;
  let start = t * lp.chunk;
  let at = ((b * state_heads() + h / lp.sharers) * lp.chunks + t) * F * W;
  let qr = q_row(b, h, i);
  let lead = f32(pos - start);
  var x = 0.0;
  for (var f = 0u; f < F; f++) {
    var y = 0.0;
    for (var w = 0u; w < W; w++) {
      let fw = at + f * W + w;
      y += (lead * work[fw] + moments[fw]) * adj[e * W + w];
    }
    x += phi_q(qr, f) * y;
  }
  x *= powi(decay[h], pos - start + 1u);
  for (var j = start; j <= pos; j++) {
    var y = 0.0;
    for (var w = 0u; w < W; w++) { y += adj[e * W + w] * value(b, hk, j, w); }
    x += scores[e * lp.chunk + j - start] * y * f32(pos - j);
  }
  terms[e] = x;
}
`;
}
