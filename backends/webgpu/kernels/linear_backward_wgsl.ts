/**
 * The backward pass of the linear kernel family (see `linear()` and `linear_wgsl.ts`), with
 * `A_ij = γ^(p_i−j)·φ(q_i)·φ(k_j)` and row `i`'s adjoint `a_i` (`_linear_backward_rows_wgsl.ts`).
 * After the forward's key-side passes (features, chunk states, scan, scores), the passes are:
 * 1. adjoint: per row, its denominator and `dO·num` recomputed in f32, then `a_i` and its decay
 *    term;
 * 2. weights (causal): per row and key of its chunk, `γ^(p−j)·a_i·[v_j; 1]`;
 * 3. `dφ(q)`: per row and feature, the state before its chunk times `a_i` plus the weighted keys;
 * 4. query states: per chunk, its rows' `Σ γ^(p_i−start) φ(q_i) a_iᵀ` (`F × W`, per query head);
 * 5. reverse scan: each chunk's slot becomes the state of the rows after it (non-causal: a total);
 * 6. `dφ(k)` and dv: per key and feature or value column, summed over the KV head's query heads
 *    in order: the state after the key's chunk decayed to it, plus the chunk's later rows;
 * 7. pullbacks: dq and dk from `dφ` through φ' (elementwise) or Performer's Jacobian;
 * 8. with a decay: the key-side moments (own per chunk, then scanned) and per row its share of
 *    `Σ_ij dA_ij·A_ij·(p_i − j)`, weighted by distance so that no two large sums cancel.
 * Every entry has one owner and a fixed summation order: two runs give identical bits. Memory:
 * `O(N·(F + W + C) + N·F·W / C)` f32, like the forward; no `Nq × Nk` buffer.
 * @module
 */
import { LINEAR_BINDINGS, LINEAR_WORKGROUP, type LinearParams } from "./_linear_features_wgsl.ts";
import { CHUNK_ENTRY } from "./linear_wgsl.ts";
import {
  backwardPrelude,
  KEY_SIDE,
  LINEAR_BACKWARD_BINDINGS as LB,
  storage,
} from "./_linear_backward_common_wgsl.ts";

export { GRAD_FIELDS, LINEAR_BACKWARD_BINDINGS } from "./_linear_backward_common_wgsl.ts";
export {
  adjointWgsl,
  dPhiQWgsl,
  queryStatesWgsl,
  reverseScanWgsl,
  rowTermsWgsl,
  weightsWgsl,
} from "./_linear_backward_rows_wgsl.ts";

const MAIN = `@compute @workgroup_size(${LINEAR_WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let e = invocation(id);
  if (e >= lp.total) { return; }
`;

/**
 * A key pass's loop over the query heads `h` of KV head `kh`: sets `bh`, `g`, `rat` (where the
 * query-side state for key `j` starts) and, causal, the chunk's `start`/`end` and the rows after
 * `j` in it (`low .. end`), around `inner`.
 */
function headLoop(params: LinearParams, inner: string): string {
  return params.causal
    ? `  let t = j / lp.chunk;
  let start = t * lp.chunk;
  let end = min(start + lp.chunk, p.kv_len);
  let low = max(j, first_pos());
  for (var m = 0u; m < p.group; m++) {
    let h = kh * p.group + m;
    let bh = b * p.heads + h;
    let g = decay[h];
    let rat = (bh * lp.chunks + t) * F * W;
    let carried = powi(g, end - j);
${inner}
  }`
    : `  for (var m = 0u; m < p.group; m++) {
    let h = kh * p.group + m;
    let bh = b * p.heads + h;
    let rat = bh * F * W;
    let carried = 1.0;
${inner}
  }`;
}

/** The query-side state binding of key passes: per chunk (causal) or the total. */
function statesOf(params: LinearParams): string {
  return params.causal
    ? KEY_SIDE.decay + storage(LB.queryStates, "rs")
    : storage(LB.queryTotal, "rs");
}

/**
 * Invocation `e` of `B·Hkv·Nk·F` writes `dφ(k_j)[f]`, summed over the KV head's query heads in
 * order: `γ^(end−j)·R_after[f]·[v_j; 1]` plus the chunk's rows at or after `j`, `φ(q_i)[f]` by
 * their weights.
 */
export function dPhiKWgsl(params: LinearParams): string {
  const intra = params.causal
    ? `    for (var pos = low; pos < end; pos++) {
      let i = row_at(pos);
      x += weights[(bh * p.q_len + i) * lp.chunk + j - start] * phi_q(q_row(b, h, i), f);
    }`
    : "";
  return `${backwardPrelude(params)}${statesOf(params)}${
    params.causal ? storage(LB.weights, "weights") : ""
  }${storage(LINEAR_BINDINGS.out, "out", "read_write")}${MAIN}  let f = e % F;
  let j = (e / F) % p.kv_len;
  let bk = e / (F * p.kv_len);
  let kh = bk % kv_heads();
  let b = bk / kv_heads();
  var acc = 0.0;
${
    headLoop(
      params,
      `    var x = 0.0;
    for (var w = 0u; w < W; w++) { x += rs[rat + f * W + w] * value(b, kh, j, w); }
    x *= carried;
${intra}
    acc += x;`,
    )
  }
  out[e] = acc;
}
`;
}

/**
 * Invocation `e` of `B·Hkv·Nk·Dv` writes `dv_j[d]`, summed over the KV head's query heads in
 * order: `γ^(end−j)·φ(k_j)ᵀ R_after[·][d]` plus the chunk's rows at or after `j`, `a_i[d]` by
 * their scores.
 */
export function dValueWgsl(params: LinearParams): string {
  const intra = params.causal
    ? `    for (var pos = low; pos < end; pos++) {
      let r = bh * p.q_len + row_at(pos);
      x += scores[r * lp.chunk + j - start] * adj[r * W + d];
    }`
    : "";
  return `${backwardPrelude(params)}${statesOf(params)}${
    params.causal ? KEY_SIDE.scores + storage(LB.adjoint, "adj") : ""
  }${storage(LINEAR_BINDINGS.out, "out", "read_write")}${MAIN}  let d = e % DV;
  let j = (e / DV) % p.kv_len;
  let bk = e / (DV * p.kv_len);
  let kh = bk % kv_heads();
  let b = bk / kv_heads();
  let kr = k_row(b, kh, j);
  var acc = 0.0;
${
    headLoop(
      params,
      `    var x = 0.0;
    for (var f = 0u; f < F; f++) { x += phi_k(kr, f) * rs[rat + f * W + d]; }
    x *= carried;
${intra}
    acc += x;`,
    )
  }
  out[e] = acc;
}
`;
}

/**
 * Causal plans with a decay: invocation `e` of `B·Hs·T·F·W` (entries fastest, as the chunk-states
 * pass) writes chunk `t`'s own moment entry `Σ_j (end − j)·γ^(end−1−j)·φ(k_j)[f]·[v_j; 1][c]`,
 * by Horner's rule on the state and the moment together.
 */
export function momentChunksWgsl(params: LinearParams): string {
  return `${backwardPrelude(params)}${KEY_SIDE.decay}${
    storage(LINEAR_BINDINGS.out, "out", "read_write")
  }${MAIN}${CHUNK_ENTRY}  var acc = 0.0;
  var m = 0.0;
  for (var j = start; j < end; j++) {
    acc = acc * g + phi_k(k_row(b, hk, j), f) * value(b, hk, j, c);
    m = m * g + acc;
  }
  out[e] = m;
}
`;
}

/**
 * Causal plans with a decay: invocation `e` of `B·Hs·F·W` replaces each chunk's own moment by the
 * moment before it, `M = Σ_{j<start} (start − j)·γ^(start−1−j)·φ(k_j)[f]·[v_j; 1][c]`, carried as
 * `M ← γ^len·(M + len·S) + own` with the state `S` before the chunk (the scan's `work`).
 */
export function momentScanWgsl(params: LinearParams): string {
  return `${backwardPrelude(params, false)}${KEY_SIDE.decay}${KEY_SIDE.work}${
    storage(LB.moments, "moments", "read_write")
  }${MAIN}  let fw = e % (F * W);
  let bs = e / (F * W);
  let g = decay[(bs % state_heads()) * lp.sharers];
  var m = 0.0;
  for (var t = 0u; t < lp.chunks; t++) {
    let at = (bs * lp.chunks + t) * F * W + fw;
    let own = moments[at];
    moments[at] = m;
    let len = min(lp.chunk, p.kv_len - t * lp.chunk);
    m = powi(g, len) * (m + f32(len) * work[at]) + own;
  }
}
`;
}

/**
 * Invocation `e` of `rows·D` writes `∂loss/∂x` of q (`role` "q") or k rows, f32 contiguous, from
 * `dφ` (`F` per row): `φ'(x)·dφ` for elementwise maps (`F = D`); for Performer's
 * `φ_f = exp(W_f·x' − |x'|²/2)/√m` with `x' = x·√s`,
 * `√s·Σ_f dφ_f φ_f (W_f − x')` (one sum: two would cancel).
 */
export function pullbackWgsl(params: LinearParams, role: "q" | "k"): string {
  const base = role === "q"
    ? `let i = r % p.q_len;
  let bh = r / p.q_len;
  let x = load_q(p.q_off + (bh / p.heads) * p.q_sb + (bh % p.heads) * p.q_sh + i * p.q_sn + d * p.q_sd);`
    : `let j = r % p.kv_len;
  let bh = r / p.kv_len;
  let x = load_k(p.k_off + (bh / kv_heads()) * p.k_sb + (bh % kv_heads()) * p.k_sh + j * p.k_sn + d * p.k_sd);`;
  const performer = params.featureMap.kind === "performer";
  const { phiQ, phiK, matrix } = LINEAR_BINDINGS;
  const body = performer
    ? `  let root = sqrt(p.scale);
  let xr = x * root;
  var acc = 0.0;
  for (var f = 0u; f < F; f++) {
    acc += dphis[r * F + f] * feats[r * F + f] * (wm[f * D + d] - xr);
  }
  out[e] = root * acc;`
    : `  out[e] = dphi(x) * dphis[r * F + d];`;
  const reads = performer
    ? storage(role === "q" ? phiQ : phiK, "feats") + storage(matrix, "wm")
    : "";
  return `${backwardPrelude(params, !performer)}${reads}${storage(LB.dphi, "dphis")}${
    storage(LINEAR_BINDINGS.out, "out", "read_write")
  }${MAIN}  let d = e % D;
  let r = e / D;
  ${base}
${body}
}
`;
}
