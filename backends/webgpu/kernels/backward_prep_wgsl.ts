/**
 * The backward pass's prep kernel: `dO` as contiguous f32 rows, and each row's lse beside
 * `D = rowsum(dO ∘ O)`, which every tile of the row reads.
 * @module
 */
import type { DType } from "../../../core/tensor_desc.ts";

/** Fields of the prep pass's uniform block (all u32): rows and the views of out, dO and lse. */
export const PREP_FIELDS = [
  "rows",
  "heads",
  "q_len",
  "value_dim",
  "o_off",
  "o_sb",
  "o_sh",
  "o_sn",
  "o_sd",
  "g_off",
  "g_sb",
  "g_sh",
  "g_sn",
  "g_sd",
  "l_off",
  "l_sb",
  "l_sh",
  "l_sn",
] as const;

/** Threads of the prep pass's workgroups. */
export const PREP_THREADS = 64;

/**
 * The prep pass: row `r` (of `B·H·Nq`) writes `dO` contiguous f32 to `go`, and `(lse, D)` to
 * `stats` (`D = 0` where the row saw no key, so its gradients vanish). Grid (rows / 64, …).
 */
export function backwardPrepWgsl(dtype: DType): string {
  const fields = PREP_FIELDS.map((f) => `  ${f}: u32,`).join("\n");
  const type = dtype === "f16" ? "u32" : "f32";
  const load = (name: string) =>
    dtype === "f16"
      ? `fn load_${name}(i: u32) -> f32 { return unpack2x16float(${name}_buf[i >> 1u])[i & 1u]; }`
      : `fn load_${name}(i: u32) -> f32 { return ${name}_buf[i]; }`;
  return `struct Prep {\n${fields}\n}
@group(0) @binding(0) var<uniform> p: Prep;
@group(0) @binding(1) var<storage, read> o_buf: array<${type}>;
@group(0) @binding(2) var<storage, read> g_buf: array<${type}>;
@group(0) @binding(3) var<storage, read> l_buf: array<f32>;
@group(0) @binding(4) var<storage, read_write> go: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<vec2<f32>>;
${load("o")}
${load("g")}
@compute @workgroup_size(${PREP_THREADS})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let row = id.x + id.y * 65535u * ${PREP_THREADS}u;
  if (row >= p.rows) { return; }
  let i = row % p.q_len;
  let bh = row / p.q_len;
  let b = bh / p.heads;
  let h = bh % p.heads;
  let lse = l_buf[p.l_off + b * p.l_sb + h * p.l_sh + i * p.l_sn];
  let ob = p.o_off + b * p.o_sb + h * p.o_sh + i * p.o_sn;
  let gb = p.g_off + b * p.g_sb + h * p.g_sh + i * p.g_sn;
  var delta = 0.0;
  for (var d = 0u; d < p.value_dim; d++) {
    let g = load_g(gb + d * p.g_sd);
    go[row * p.value_dim + d] = g;
    delta += g * load_o(ob + d * p.o_sd);
  }
  // -Infinity sits below every finite lse; NaN rows keep their NaN.
  stats[row] = vec2<f32>(lse, select(delta, 0.0, lse < -3.0e38f));
}
`;
}
