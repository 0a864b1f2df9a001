/**
 * Low-rank (Linformer) projection: `out = P·X` along the sequence, for every batch and KV head,
 * written contiguous `[B, Hkv, k, dim]` in the plan's storage dtype for the attention kernel to
 * read as its keys or values. One invocation per output element (two per f16 word), an `Nk`-long
 * f32 dot product each: neighbouring invocations read neighbouring columns of `X` and the same
 * entry of `P`. `X` and `P` are read through their strides (`P`'s head stride 0 when shared).
 * @module
 */
/** Invocations per workgroup. */
export const PROJECTION_WORKGROUP = 64;

/** The uniform block's u32 fields, in order. */
export const PROJECTION_FIELDS = [
  "total",
  "keys",
  "rows",
  "dim",
  "kv_heads",
  "x_off",
  "x_sb",
  "x_sh",
  "x_sn",
  "x_sd",
  "m_off",
  "m_sh",
  "m_sr",
  "m_sj",
  "pad0",
  "pad1",
] as const;

/** `load_<name>(element index) -> f32` over f32 storage or f16 packed two per u32. */
function load(name: string, f16: boolean): string {
  return f16
    ? `fn load_${name}(i: u32) -> f32 { return unpack2x16float(${name}_buf[i >> 1u])[i & 1u]; }`
    : `fn load_${name}(i: u32) -> f32 { return ${name}_buf[i]; }`;
}

/**
 * The projection kernel for a storage dtype. Bindings: 0 the uniform block, 1 `X`, 2 `P`, 3 the
 * output (f32, or f16 packed two per u32, which needs no `shader-f16`).
 *
 * @param dtype Storage dtype of `X`, `P` and the output.
 * @returns WGSL source.
 */
export function lowRankProjectionWgsl(dtype: "f32" | "f16"): string {
  const f16 = dtype === "f16";
  const fields = PROJECTION_FIELDS.map((f) => `  ${f}: u32,`).join("\n");
  return `struct Params {
${fields}
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x_buf: array<${f16 ? "u32" : "f32"}>;
@group(0) @binding(2) var<storage, read> m_buf: array<${f16 ? "u32" : "f32"}>;
@group(0) @binding(3) var<storage, read_write> out: array<${f16 ? "u32" : "f32"}>;
${load("x", f16)}
${load("m", f16)}
fn element(e: u32) -> f32 {
  let d = e % p.dim;
  let r = (e / p.dim) % p.rows;
  let bh = e / (p.dim * p.rows);
  let h = bh % p.kv_heads;
  let b = bh / p.kv_heads;
  var xi = p.x_off + b * p.x_sb + h * p.x_sh + d * p.x_sd;
  var mi = p.m_off + h * p.m_sh + r * p.m_sr;
  var acc = 0.0;
  for (var j = 0u; j < p.keys; j++) {
    acc += load_m(mi) * load_x(xi);
    xi += p.x_sn;
    mi += p.m_sj;
  }
  return acc;
}
@compute @workgroup_size(${PROJECTION_WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let w = id.x + id.y * ${65535 * PROJECTION_WORKGROUP}u;
${
    f16
      ? `  let e = 2u * w;
  if (e >= p.total) { return; }
  let second = select(0.0, element(e + 1u), e + 1u < p.total);
  out[w] = pack2x16float(vec2<f32>(element(e), second));`
      : `  if (w >= p.total) { return; }
  out[w] = element(w);`
  }
}
`;
}
