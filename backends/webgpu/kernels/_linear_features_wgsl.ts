/**
 * The feature map φ of the linear kernels. Elementwise maps (elu + 1, relu, identity, a custom
 * Expr over `score`) are applied as rows are loaded, so they cost no buffer; a custom map's
 * constants are lifted into the literal block (binding 7), so maps differing only in constants
 * share pipelines. Performer's features are not elementwise: each is a `D`-long dot product, so a
 * features pass computes them once per row into f32 buffers that the other passes read.
 * @module
 */
import type { Expr } from "../../../core/expr.ts";
import { featureExpr, type FeatureMap } from "../../../core/linear.ts";
import { type LiteralTable, toWgsl } from "../../../core/to_wgsl.ts";
import type { DType } from "../../../core/tensor_desc.ts";
import { inputsWgsl, LITERALS_BINDING, paramsWgsl } from "./_common_wgsl.ts";

/**
 * Binding numbers beyond the parameter block (0) and q, k, v (1-3): the linear uniform block,
 * decays per query head, the chunk states, the lifted literals, the input state, the output (or
 * the new state), Performer's query and key features and its matrix `W`, and the intra-chunk
 * scores of causal plans.
 */
export const LINEAR_BINDINGS = {
  linear: 4,
  decay: 5,
  work: 6,
  literals: LITERALS_BINDING,
  stateIn: 8,
  out: 9,
  phiQ: 10,
  phiK: 11,
  matrix: 12,
  scores: 13,
} as const;

/**
 * Fields of the linear uniform block, in order (u32 but `epsilon`): keys per chunk, chunks,
 * invocations of the dispatch, whether to normalize, whether an input state is bound, its offset
 * and strides, and how many consecutive query heads share one key-side state (`sharers`: the
 * group size for GQA when their decays are equal, else 1).
 */
export const LINEAR_FIELDS = [
  "chunk",
  "chunks",
  "total",
  "normalize",
  "has_state",
  "s_off",
  "s_sb",
  "s_sh",
  "s_sf",
  "s_sc",
  "epsilon",
  "sharers",
] as const;

/** Invocations per workgroup of every linear pass. */
export const LINEAR_WORKGROUP = 64;

/** Compile-time parameters of the linear kernels. */
export interface LinearParams {
  readonly headDim: number;
  readonly valueDim: number;
  /** Features per row `F`. */
  readonly features: number;
  /** Storage type of q, k, v. */
  readonly dtype: DType;
  readonly featureMap: FeatureMap;
  readonly causal: boolean;
  /**
   * The elementwise map's derivative φ' over `score` (backward passes): `phiWgsl` then also
   * defines `dphi(x)`, its constants lifted after the map's.
   */
  readonly featureGradient?: Expr;
}

/**
 * The literal table of an elementwise map, then of its derivative when given: only custom maps
 * lift their constants.
 */
export function featureLiterals(map: FeatureMap, gradient?: Expr): LiteralTable {
  const table = { values: [], kinds: [] } as LiteralTable;
  if (map.kind === "expr") {
    toWgsl("phi_map", map.expr, table);
    if (gradient) toWgsl("phi_grad", gradient, table);
  }
  return table;
}

/**
 * `γ^n` by repeated squaring: about log2(n) roundings, where `pow` (exp2 of log2) is off by
 * several ulps on some adapters, which the decay's gradient (a sum weighted by distances) feels.
 */
const POWI = `fn powi(x: f32, n: u32) -> f32 {
  var r = 1.0;
  var base = x;
  var k = n;
  while (k > 0u) {
    if ((k & 1u) == 1u) { r *= base; }
    base *= base;
    k >>= 1u;
  }
  return r;
}
`;

/**
 * Declarations every linear pass shares: parameter blocks, inputs, sizes, the invocation
 * index over a 2D grid, and `powi`.
 */
export function linearHeader(params: LinearParams): string {
  const fields = LINEAR_FIELDS.map((f) => `  ${f}: ${f === "epsilon" ? "f32" : "u32"},`).join(
    "\n",
  );
  return `${paramsWgsl()}${inputsWgsl(params.dtype)}
struct Linear {
${fields}
}
@group(0) @binding(${LINEAR_BINDINGS.linear}) var<uniform> lp: Linear;
const D: u32 = ${params.headDim}u;
const DV: u32 = ${params.valueDim}u;
const F: u32 = ${params.features}u;
const W: u32 = ${params.valueDim + 1}u;
fn invocation(id: vec3<u32>) -> u32 { return id.x + id.y * ${65535 * LINEAR_WORKGROUP}u; }
${POWI}`;
}

/**
 * `q_row(b, h, i)` / `k_row(b, hk, j)`: where a row's features start, and `phi_q(row, f)` /
 * `phi_k(row, f)`: feature `f` of that row, as f32.
 */
export function phiWgsl(params: LinearParams): string {
  const map = params.featureMap;
  if (map.kind === "performer") {
    const { phiQ, phiK } = LINEAR_BINDINGS;
    return `@group(0) @binding(${phiQ}) var<storage, read> fq: array<f32>;
@group(0) @binding(${phiK}) var<storage, read> fk: array<f32>;
fn q_row(b: u32, h: u32, i: u32) -> u32 { return ((b * p.heads + h) * p.q_len + i) * F; }
fn k_row(b: u32, hk: u32, j: u32) -> u32 {
  return ((b * (p.heads / p.group) + hk) * p.kv_len + j) * F;
}
fn phi_q(row: u32, f: u32) -> f32 { return fq[row + f]; }
fn phi_k(row: u32, f: u32) -> f32 { return fk[row + f]; }
`;
  }
  const table = { values: [], kinds: [] } as LiteralTable;
  const lifted = map.kind === "expr" ? table : undefined;
  const fn = toWgsl("phi_map", featureExpr(map)!, lifted);
  const slope = params.featureGradient;
  const grad = slope ? toWgsl("phi_grad", slope, lifted) : "";
  const lits = table.values.length > 0
    ? `@group(0) @binding(${LINEAR_BINDINGS.literals}) var<uniform> lits: array<vec4<u32>, ${
      Math.ceil(table.values.length / 4)
    }>;\n`
    : "";
  // With a derivative, a pass may call only one of phi and dphi while only the other reads the
  // literals: both touch them so that every pass binds the block the same way.
  const touch = slope && lits ? "_ = lits[0]; " : "";
  const dphi = slope
    ? `fn dphi(x: f32) -> f32 { ${touch}return phi_grad(0i, 0i, 0i, 0i, 0i, 0i, x); }\n`
    : "";
  return `${lits}${fn}${grad}fn phi(x: f32) -> f32 { ${touch}return phi_map(0i, 0i, 0i, 0i, 0i, 0i, x); }
${dphi}fn q_row(b: u32, h: u32, i: u32) -> u32 { return p.q_off + b * p.q_sb + h * p.q_sh + i * p.q_sn; }
fn k_row(b: u32, hk: u32, j: u32) -> u32 {
  return p.k_off + b * p.k_sb + hk * p.k_sh + j * p.k_sn;
}
fn phi_q(row: u32, f: u32) -> f32 { return phi(load_q(row + f * p.q_sd)); }
fn phi_k(row: u32, f: u32) -> f32 { return phi(load_k(row + f * p.k_sd)); }
`;
}

/**
 * Performer's features of q (`role` "q") or k rows: invocation `e` of `rows·F` (features
 * fastest) writes `exp(W_f·x' − |x'|²/2) / √m`, `x' = x·√scale`, for row `e / F` in the layout
 * `q_row`/`k_row` read. Grid from `grid(⌈total / 64⌉)`.
 */
export function performerFeaturesWgsl(params: LinearParams, role: "q" | "k"): string {
  const target = role === "q" ? LINEAR_BINDINGS.phiQ : LINEAR_BINDINGS.phiK;
  const base = role === "q"
    ? `let i = row % p.q_len;
  let bh = row / p.q_len;
  let base = p.q_off + (bh / p.heads) * p.q_sb + (bh % p.heads) * p.q_sh + i * p.q_sn;`
    : `let kv_heads = p.heads / p.group;
  let j = row % p.kv_len;
  let bh = row / p.kv_len;
  let base = p.k_off + (bh / kv_heads) * p.k_sb + (bh % kv_heads) * p.k_sh + j * p.k_sn;`;
  return `${
    linearHeader(params)
  }@group(0) @binding(${LINEAR_BINDINGS.matrix}) var<storage, read> wm: array<f32>;
@group(0) @binding(${target}) var<storage, read_write> feats: array<f32>;
@compute @workgroup_size(${LINEAR_WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let e = invocation(id);
  if (e >= lp.total) { return; }
  let f = e % F;
  let row = e / F;
  ${base}
  let root = sqrt(p.scale);
  // One sum for W_f·x' − |x'|²/2: two would round twice and partly cancel.
  var z = 0.0;
  for (var d = 0u; d < D; d++) {
    let x = load_${role}(base + d * p.${role}_sd) * root;
    z += x * (wm[f * D + d] - 0.5 * x);
  }
  feats[e] = exp(z) / sqrt(f32(F));
}
`;
}
