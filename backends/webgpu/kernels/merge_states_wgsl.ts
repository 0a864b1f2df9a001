/**
 * The merge pass of split flash plans (Flash-Decoding): each key split wrote its share's state,
 * `out_s` normalized over its keys and `lse_s`; states over disjoint keys combine exactly as
 * `lse = log Σ e^lse_s` and `out = Σ e^(lse_s - lse) · out_s`. The sink logit, when the plan has
 * one, joins here once, as one more state whose `out` is zero.
 * @module
 */
import type { Expr } from "../../../core/expr.ts";
import { modifiersWgsl, NEG_INF_WGSL, paramsWgsl } from "./_common_wgsl.ts";

/** Invocations per workgroup of the merge pass: one output element each. */
export const MERGE_THREADS = 64;

/**
 * WGSL of the merge pass: one invocation per element of `out` (a row of `[B, Hq, Nq]` and a value
 * column; rows with no value columns get one), reading `p.splits` states
 * `p.split_stride` rows apart (binding 3: lse, 4: out), writing f32 `out` (5) and `lse` (6).
 *
 * @param modifiers The plan's mask, score modifier and sink logits: the merge reads only the
 * sink logits, but from the plan's literal table, whose layout all three fix (bound at 7).
 */
export function mergeStatesWgsl(
  modifiers: { mask?: Expr; scoreMod?: Expr; sinkLogits?: readonly number[] },
): string {
  const { mask, scoreMod, sinkLogits } = modifiers;
  const sink = sinkLogits !== undefined;
  return `${paramsWgsl()}
@group(0) @binding(3) var<storage, read> part_lse: array<f32>;
@group(0) @binding(4) var<storage, read> part_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> out_buf: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse_buf: array<f32>;
${sink ? modifiersWgsl(mask, scoreMod, sinkLogits) : ""}
@compute @workgroup_size(${MERGE_THREADS})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
  // One invocation per output element (row, d): the splits' weights are recomputed by each of a
  // row's value columns, which costs splits exps but runs the row's columns in parallel.
  let item = id.x + id.y * n.x * ${MERGE_THREADS}u;
  let width = max(p.value_dim, 1u);
  let row = item / width;
  let d = item % width;
  if (row >= p.split_stride) { return; }
  let no_keys = ${NEG_INF_WGSL};
  ${
    sink
      ? `let sink = sink_logit(0, i32((row / p.q_len) % p.heads), 0, 0, 0, 0, 0.0);
  var top = sink;`
      : "var top = no_keys;"
  }
  for (var s = 0u; s < p.splits; s++) { top = max(top, part_lse[s * p.split_stride + row]); }
  // No split saw a key (and no sink): zeros and lse = -Infinity, never NaN.
  if (top == no_keys) {
    if (d < p.value_dim) { out_buf[row * p.value_dim + d] = 0.0; }
    if (d == 0u) { lse_buf[row] = no_keys; }
    return;
  }
  var total = ${sink ? "exp(sink - top)" : "0.0"};
  var x = 0.0;
  for (var s = 0u; s < p.splits; s++) {
    let at = s * p.split_stride + row;
    let w = exp(part_lse[at] - top);
    total += w;
    // A split that saw no key has weight 0: its zeros must not meet a NaN weight.
    if (d < p.value_dim && (w > 0.0 || w != w)) { x += w * part_out[at * p.value_dim + d]; }
  }
  if (d < p.value_dim) { out_buf[row * p.value_dim + d] = x / total; }
  if (d == 0u) { lse_buf[row] = top + log(total); }
}
`;
}
