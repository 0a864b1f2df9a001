/**
 * Row copies for the paged KV cache: `gather` copies rows `rows[i]` of a strided source into row
 * `i` of a new contiguous buffer; `scatter` writes row `i` of a strided source over row `rows[i]`
 * of a contiguous target, in place. The source is `[R, d1, d2, d3]` (lower ranks padded with
 * ones) with any strides; one invocation per target element (f32), per target word (f16
 * gather), or per element with atomic half-word updates (f16 scatter: a row of odd width shares
 * its edge words with its neighbours, which other invocations may be writing).
 * @module
 */
import type { DType } from "../../../core/tensor_desc.ts";

/** Invocations per workgroup. */
export const ROWS_THREADS = 256;

/** Fields of the rows kernels' uniform block, all u32. */
export const ROWS_FIELDS = [
  "count",
  "width",
  "d1",
  "d2",
  "d3",
  "s0",
  "s1",
  "s2",
  "s3",
  "offset",
] as const;

/** WGSL of a gather or scatter for a storage dtype. */
export function rowsWgsl(mode: "gather" | "scatter", dtype: DType): string {
  const f16 = dtype === "f16";
  const fields = ROWS_FIELDS.map((f) => `  ${f}: u32,`).join("\n");
  const target = f16 && mode === "scatter"
    ? "array<atomic<u32>>"
    : f16
    ? "array<u32>"
    : "array<f32>";
  const srcRow = mode === "gather" ? "rows[i]" : "i";
  const dstRow = mode === "gather" ? "i" : "rows[i]";
  const header = `struct Params {\n${fields}\n}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<${f16 ? "u32" : "f32"}>;
@group(0) @binding(2) var<storage, read> rows: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: ${target};

// Element e of source row r, through the source's strides.
fn load(r: u32, e: u32) -> f32 {
  let x3 = e % p.d3;
  let x2 = (e / p.d3) % p.d2;
  let x1 = e / (p.d3 * p.d2);
  let at = p.offset + r * p.s0 + x1 * p.s1 + x2 * p.s2 + x3 * p.s3;
  return ${f16 ? "unpack2x16float(src[at >> 1u])[at & 1u]" : "src[at]"};
}
`;
  const index = `let item = id.x + id.y * n.x * ${ROWS_THREADS}u;`;
  if (f16 && mode === "gather") {
    // One target word: elements 2w and 2w + 1 of the new contiguous buffer.
    return `${header}
@compute @workgroup_size(${ROWS_THREADS})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
  ${index}
  let total = p.count * p.width;
  if (2u * item >= total) { return; }
  var pair = vec2<f32>(0.0);
  for (var c = 0u; c < 2u; c++) {
    let x = 2u * item + c;
    if (x < total) { let i = x / p.width; pair[c] = load(${srcRow}, x % p.width); }
  }
  dst[item] = pack2x16float(pair);
}
`;
  }
  const store = f16
    ? `let bits = pack2x16float(vec2<f32>(x, 0.0)) & 0xffffu;
  let shift = (at & 1u) * 16u;
  atomicAnd(&dst[at >> 1u], ~(0xffffu << shift));
  atomicOr(&dst[at >> 1u], bits << shift);`
    : "dst[at] = x;";
  return `${header}
@compute @workgroup_size(${ROWS_THREADS})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
  ${index}
  if (item >= p.count * p.width) { return; }
  let i = item / p.width;
  let e = item % p.width;
  let x = load(${srcRow}, e);
  let at = ${dstRow} * p.width + e;
  ${store}
}
`;
}
