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

/** Rows of a prep workgroup: 32 invocations read each row, so a warp's loads are contiguous. */
export const PREP_ROWS = 2;

/**
 * The prep pass: row `r` (of `B·H·Nq`) writes `dO` contiguous f32 to `go`, and `(lse, D)` to
 * `stats` (`D = 0` where the row saw no key, so its gradients vanish). 32 invocations per row, each
 * summing dims `lane + 32·m`, then a fixed-order tree over the lanes: the same bits every run.
 * Grid (rows / 2, …).
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
const LANES = 32u;
var<workgroup> part: array<f32, ${32 * PREP_ROWS}>;
@compute @workgroup_size(${32 * PREP_ROWS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = (wg.x + wg.y * 65535u) * ${PREP_ROWS}u + lid / LANES;
  let lane = lid % LANES;
  var delta = 0.0;
  if (row < p.rows) {
    let i = row % p.q_len;
    let bh = row / p.q_len;
    let b = bh / p.heads;
    let h = bh % p.heads;
    let ob = p.o_off + b * p.o_sb + h * p.o_sh + i * p.o_sn;
    let gb = p.g_off + b * p.g_sb + h * p.g_sh + i * p.g_sn;
    for (var d = lane; d < p.value_dim; d += LANES) {
      let g = load_g(gb + d * p.g_sd);
      go[row * p.value_dim + d] = g;
      delta += g * load_o(ob + d * p.o_sd);
    }
  }
  part[lid] = delta;
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lane < s) { part[lid] += part[lid + s]; }
    workgroupBarrier();
  }
  if (row < p.rows && lane == 0u) {
    let i = row % p.q_len;
    let bh = row / p.q_len;
    let lse = l_buf[p.l_off + (bh / p.heads) * p.l_sb + (bh % p.heads) * p.l_sh + i * p.l_sn];
    // -Infinity sits below every finite lse; NaN rows keep their NaN.
    stats[row] = vec2<f32>(lse, select(part[lid], 0.0, lse < -3.0e38f));
  }
}
`;
}
