/**
 * Merges two attention states over disjoint key sets, `(out_a, lse_a)` and `(out_b, lse_b)`, into
 * `lse = log(e^lse_a + e^lse_b)` and `out = e^(lse_a - lse)·out_a + e^(lse_b - lse)·out_b`: the
 * step `mergeStates()` folds over its list. One invocation per output element (a row of lse with
 * one value column; rows of no columns get one). Contiguous inputs; `out` read as f32 or as f16
 * packed two per word, written as f32; lse always f32.
 * @module
 */
import type { DType } from "../../../core/tensor_desc.ts";
import { NEG_INF_WGSL } from "./_common_wgsl.ts";

/** Invocations per workgroup. */
export const MERGE_PAIR_THREADS = 256;

/** WGSL of a pair merge whose two `out` inputs have the given storage types. */
export function mergePairWgsl(a: DType, b: DType): string {
  const binding = (n: number, name: string, dtype: DType) =>
    `@group(0) @binding(${n}) var<storage, read> ${name}: array<${dtype === "f16" ? "u32" : "f32"}>;
fn load_${name}(i: u32) -> f32 { return ${
      dtype === "f16" ? `unpack2x16float(${name}[i >> 1u])[i & 1u]` : `${name}[i]`
    }; }`;
  return `struct Sizes { rows: u32, width: u32 }
@group(0) @binding(0) var<uniform> sizes: Sizes;
${binding(1, "a_out", a)}
@group(0) @binding(2) var<storage, read> a_lse: array<f32>;
${binding(3, "b_out", b)}
@group(0) @binding(4) var<storage, read> b_lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;

@compute @workgroup_size(${MERGE_PAIR_THREADS})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
  let item = id.x + id.y * n.x * ${MERGE_PAIR_THREADS}u;
  let columns = max(sizes.width, 1u);
  let row = item / columns;
  let d = item % columns;
  if (row >= sizes.rows) { return; }
  let la = a_lse[row];
  let lb = b_lse[row];
  let top = max(la, lb);
  // Neither state saw a key: zeros and lse = -Infinity, never NaN.
  if (top == ${NEG_INF_WGSL}) {
    if (d < sizes.width) { out[item] = 0.0; }
    if (d == 0u) { lse[row] = top; }
    return;
  }
  let wa = exp(la - top);
  let wb = exp(lb - top);
  var x = 0.0;
  // A state with weight 0 saw no key (or -Infinity scores): its zeros must not meet NaN.
  if (d < sizes.width) {
    if (wa > 0.0 || wa != wa) { x += wa * load_a_out(item); }
    if (wb > 0.0 || wb != wb) { x += wb * load_b_out(item); }
    out[item] = x / (wa + wb);
  }
  if (d == 0u) { lse[row] = top + log(wa + wb); }
}
`;
}
