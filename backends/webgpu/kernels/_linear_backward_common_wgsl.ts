/**
 * What the linear backward passes share: their bindings beyond the forward's, the gradient's view
 * block, and the WGSL prelude (the forward's header and feature map with its derivative, plus
 * small position helpers). Each pass declares only the buffers it reads, so that every binding a
 * dispatch passes is in the pass's automatic layout.
 * @module
 */
import { LINEAR_BINDINGS, linearHeader, type LinearParams } from "./_linear_features_wgsl.ts";
import { phiWgsl } from "./_linear_features_wgsl.ts";

/**
 * Bindings of the backward passes beyond the forward's (`LINEAR_BINDINGS`): `dOut` in the plan's
 * storage type and its view block, the rows' adjoints `a_i` (`W` each), the rows' intra-chunk
 * weights `γ^(p−j)·a_i·[v_j; 1]` (`C` each), the query-side states, per-row or per-key terms of
 * the decay's gradient, a `dφ` to pull back, the query-side total (non-causal), and the key-side
 * moments (with a decay).
 */
export const LINEAR_BACKWARD_BINDINGS = {
  grad: 14,
  gradView: 15,
  adjoint: 16,
  weights: 17,
  queryStates: 18,
  terms: 19,
  dphi: 20,
  queryTotal: 21,
  moments: 22,
} as const;

/** Fields of the gradient's view block (u32): offset and strides of `dOut`, padded. */
export const GRAD_FIELDS = ["off", "sb", "sh", "sn", "sd", "pad0", "pad1", "pad2"] as const;

/** A storage buffer declaration. */
export function storage(
  binding: number,
  name: string,
  access: "read" | "read_write" = "read",
  type = "f32",
): string {
  return `@group(0) @binding(${binding}) var<storage, ${access}> ${name}: array<${type}>;\n`;
}

/** `decay`, the forward's chunk states as `work`, and the scores, read-only. */
export const KEY_SIDE = {
  decay: storage(LINEAR_BINDINGS.decay, "decay"),
  work: storage(LINEAR_BINDINGS.work, "work"),
  scores: storage(LINEAR_BINDINGS.scores, "scores"),
} as const;

/**
 * The forward's header, the feature map (with `dphi` when `featureGradient` is set) and helpers:
 * `value(b, hk, j, c)` (`v_j[c]`, 1 at `c = Dv`), `first_pos()` (the lowest position with a query
 * row), `row_at(pos)` (that row), `state_heads()`, `kv_heads()`.
 */
export function backwardPrelude(params: LinearParams, phi = true): string {
  return `${linearHeader(params)}${phi ? phiWgsl(params) : ""}
fn value(b: u32, hk: u32, j: u32, c: u32) -> f32 {
  if (c >= DV) { return 1.0; }
  return load_v(p.v_off + b * p.v_sb + hk * p.v_sh + j * p.v_sn + c * p.v_sd);
}
fn first_pos() -> u32 { return select(0u, p.kv_len - p.q_len, p.kv_len > p.q_len); }
fn row_at(pos: u32) -> u32 { return pos + p.q_len - p.kv_len; }
fn state_heads() -> u32 { return p.heads / lp.sharers; }
fn kv_heads() -> u32 { return p.heads / p.group; }
`;
}
