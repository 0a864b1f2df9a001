/**
 * The flash backward's tile kernels (FlashAttention-2 by recomputation, without float atomics;
 * `backward_prep_wgsl.ts` makes the `dO` rows and `D = rowsum(dO ∘ O)` they read). Two passes
 * then recompute `S = scale·Q·Kᵀ`, `P = exp(mod(S) − lse)`, `dP = dO·Vᵀ` and
 * `dS = P ∘ (dP − D) · mod′(S)` per (query tile, key tile) pair of the block layout: in the `kv`
 * pass each workgroup owns a key tile and walks the query tiles that see it (a group's query heads
 * in order) to accumulate `dK = scale·dSᵀ·Q` and `dV = Pᵀ·dO`; in the `q` pass each owns a query
 * tile and walks its key tiles for `dQ = scale·dS·K` and the head parameters' per-thread partial
 * sums. Every sum has one owner and a fixed order, so two runs give identical bits.
 *
 * Hardware adapters run the register-block kernel of `_backward_blocks_wgsl.ts`; software
 * adapters a plain variant here, whose JIT stays fast.
 * @module
 */
import type { Expr } from "../../../core/expr.ts";
import type { ScoreModGradient } from "../../../core/score_mod_gradient.ts";
import { type LiteralTable, literalWords, toWgsl } from "../../../core/to_wgsl.ts";
import type { DType } from "../../../core/tensor_desc.ts";
import { inputsWgsl, LITERALS_BINDING, paramsWgsl } from "./_common_wgsl.ts";
import { blockGeometry } from "./_backward_geometry.ts";
import { blockKernelWgsl } from "./_backward_blocks_wgsl.ts";
import { headWalkWgsl } from "./_backward_walk_wgsl.ts";

/** Compile-time shape of a tile pass. */
export interface BackwardTileParams {
  /** `kv`: a workgroup owns a key tile (dK, dV); `q`: a query tile (dQ, head parameters). */
  readonly mode: "kv" | "q";
  /** Rows of a query tile and of a key tile (a multiple of 4). */
  readonly tile: number;
  readonly headDim: number;
  readonly valueDim: number;
  readonly dtype: DType;
  readonly mask?: Expr;
  readonly scoreMod?: Expr;
  readonly gradient?: ScoreModGradient;
  /**
   * For software adapters: 2×2 score blocks, tiles read from the buffers, loop bounds from the
   * uniforms and the accumulators in the output rows. llvmpipe's JIT takes minutes on the
   * hardware kernel's unrolled register blocks (about ten for the backward test file).
   */
  readonly software?: boolean;
  /** Hardware: whether q, k, v and dO rows are read four elements at a time (see
   * `flashVecAligned`). */
  readonly vec?: boolean;
  /** Hardware: the device's workgroup memory, which sizes the phase-B chunks. */
  readonly workgroupBytes?: number;
}

/** Threads of a tile pass: `(tile/4)²` on hardware (4 × 4 blocks), `tile²/4` on software
 * adapters (2 × 2 blocks). */
export function backwardThreads(tile: number, software: boolean): number {
  return software ? tile * tile / 4 : (tile / 4) ** 2;
}

/**
 * The modifier functions a tile pass splices in (`mask_mod`, `score_mod`, `score_mod_grad`,
 * `param_grad_N`) and the uniform words of their lifted literals, in the order they read them.
 */
export function backwardModifiers(
  mask: Expr | undefined,
  scoreMod: Expr | undefined,
  gradient: ScoreModGradient | undefined,
): { readonly wgsl: string; readonly words: Uint32Array; readonly count: number } {
  const table = { values: [], kinds: [] } as LiteralTable;
  const fns = [
    mask && toWgsl("mask_mod", mask, table),
    scoreMod && toWgsl("score_mod", scoreMod, table),
    gradient && toWgsl("score_mod_grad", gradient.dScore, table),
    ...(gradient?.dParams ?? []).map((d, n) => toWgsl(`param_grad_${n}`, d, table)),
  ].filter(Boolean).join("");
  const count = table.values.length;
  const decl = count
    ? `@group(0) @binding(${LITERALS_BINDING}) var<uniform> lits: array<vec4<u32>, ${
      Math.ceil(count / 4)
    }>;\n`
    : "";
  return { wgsl: decl + fns, words: literalWords(table), count };
}

/**
 * A tile pass. Bindings: 0 params, 1–3 q/k/v, 4 tile lists (`kv`: the column view), 5 `dO` f32,
 * 6 `(lse, D)` rows, 7 literals, 8 dK or dQ (f32), 9 dV (`kv`) or head-parameter partials (`q`).
 * Grid (tiles owned, B·H of the owner). Hardware adapters get the register-block kernel
 * (`_backward_blocks_wgsl.ts`), software adapters `softwareTileWgsl`.
 * @throws {RangeError} If the hardware kernel's tile does not fit `workgroupBytes`.
 */
export function backwardTileWgsl(params: BackwardTileParams): string {
  const modifiers = backwardModifiers(params.mask, params.scoreMod, params.gradient).wgsl;
  if (params.software) return softwareTileWgsl(params, modifiers);
  const g = blockGeometry(params, params.workgroupBytes ?? 0);
  if (!g) {
    throw new RangeError(
      `Cannot build backward kernel: tile ${params.tile} at head dims ${params.headDim}/${params.valueDim} exceeds ${params.workgroupBytes} bytes of workgroup memory`,
    );
  }
  return blockKernelWgsl(params, g, modifiers);
}

/**
 * The software adapters' tile pass: a thread computes a 2×2 block of the tile's scores and owns
 * dims `grp + G·m` of row `own` of the owned tile's gradients, accumulated in the (exclusively
 * owned) output rows; tiles are read from the buffers, loop bounds from the uniforms.
 */
function softwareTileWgsl(params: BackwardTileParams, modifiers: string): string {
  const { mode, tile: B, gradient } = params;
  const T = backwardThreads(B, true);
  const G = B / 4, SS = B + 1;
  const nParams = mode === "q" ? gradient?.dParams.length ?? 0 : 0;
  const kv = mode === "kv";
  const ownLen = kv ? "p.kv_len" : "p.q_len";
  const tile = (name: string, r: string, d: string) =>
    `g${name}(${"qg".includes(name) ? "bh_q, qt0" : "bh_k, kt0"} + ${r}, ${d})`;
  const acc = (name: "a" | "v") =>
    `out_${name}[(bh_own * ${ownLen} + row) * ${name === "a" ? "D" : "V"} + d]`;
  const overDims = (dim: "D" | "V", body: string) =>
    `for (var m = 0u; m < (${dim} + G - 1u - grp) / G; m++) { let d = grp + G * m; ${body} }`;
  const qRows = kv ? "walk0" : "own0", kRows = kv ? "own0" : "walk0";
  const loadQ = `for (var r = lid; r < ${B}u; r += ${T}u) {
      let i = ${qRows} + r;
      rs[r] = select(vec2<f32>(NEG, 0.0), stats[min(bh_q * p.q_len + i, arrayLength(&stats) - 1u)], i < p.q_len);
    }`;
  const modArgs = "i32(b), i32(h), i32(i), i32(j), i32(p.q_len), i32(p.kv_len), x";
  const paramTerms = Array.from(
    { length: nParams },
    (_, n) => `pacc[${n}] += select(0.0, dsm * param_grad_${n}(${modArgs}), ok);`,
  ).join("\n      ");
  // One of a thread's 2×2 scores: P and dS into the shared tiles (unrolled: software adapters'
  // JIT is slow on dynamically indexed local arrays).
  const entry = (e: number) =>
    `{
      let li = 2u * tr + ${e >> 1}u;
      let lj = tc + ${e & 1 ? "HALF" : "0u"};
      let i = qt0 + li;
      let j = kt0 + lj;
      let st = rs[li];
      let x = sc[${e}] * p.scale;
      var ok = i < p.q_len && j < p.kv_len && st.x >= NEG;
      ${params.mask ? `if (partial && ok) { ok = mask_mod(${modArgs}); }` : ""}
      let pr = exp(${params.scoreMod ? `score_mod(${modArgs})` : "x"} - st.x);
      let dsm = pr * (dp[${e}] - st.y);
      ${paramTerms}
      ${kv ? "ps[li * SS + lj] = select(0.0, pr, ok);" : ""}
      ss[li * SS + lj] = select(0.0, dsm${gradient ? ` * score_mod_grad(${modArgs})` : ""}, ok);
    }`;
  const dots = (a: string, b: string, into: string, dim: "D" | "V") =>
    `for (var d = 0u; d < ${dim}; d++) {
      let a0 = ${tile(a, "2u * tr", "d")};
      let a1 = ${tile(a, "2u * tr + 1u", "d")};
      let b0 = ${tile(b, "tc", "d")};
      let b1 = ${tile(b, "tc + HALF", "d")};
      ${into} += vec4<f32>(a0, a0, a1, a1) * vec4<f32>(b0, b1, b0, b1);
    }`;
  const accumulate = kv
    ? `for (var li = 0u; li < ${B}u; li++) {
      let pv = ps[li * SS + own];
      let dsv = ss[li * SS + own];
      ${overDims("V", `${acc("v")} += pv * ${tile("g", "li", "d")};`)}
      ${overDims("D", `${acc("a")} += dsv * ${tile("q", "li", "d")};`)}
    }`
    : `for (var lj = 0u; lj < ${B}u; lj++) {
      let dsv = ss[own * SS + lj];
      ${overDims("D", `${acc("a")} += dsv * ${tile("k", "lj", "d")};`)}
    }`;
  const outs = kv ? (["a", "v"] as const) : (["a"] as const);
  const zero = outs.map((n) => overDims(n === "a" ? "D" : "V", `${acc(n)} = 0.0;`)).join("\n    ");
  const fetch = (name: string, len: string, value: string) =>
    `fn g${name}(bh: u32, i: u32, d: u32) -> f32 { if (i >= ${len}) { return 0.0; } return ${value}; }`;
  return `${paramsWgsl()}${inputsWgsl(params.dtype)}
@group(0) @binding(4) var<storage, read> tiles: array<u32>;
@group(0) @binding(5) var<storage, read> go: array<f32>;
@group(0) @binding(6) var<storage, read> stats: array<vec2<f32>>;
@group(0) @binding(8) var<storage, read_write> out_a: array<f32>;
${kv ? "@group(0) @binding(9) var<storage, read_write> out_v: array<f32>;" : ""}
${nParams ? "@group(0) @binding(9) var<storage, read_write> out_p: array<f32>;" : ""}
${modifiers}
const SS = ${SS}u;
const G = ${G}u;
const HALF = ${B / 2}u;
const NEG: f32 = -3.0e38f;
var<workgroup> ps: array<f32, ${B * SS}>;
var<workgroup> ss: array<f32, ${B * SS}>;
var<workgroup> rs: array<vec2<f32>, ${B}>;
fn q_at(bh: u32, i: u32) -> u32 { return p.q_off + (bh / p.heads) * p.q_sb + (bh % p.heads) * p.q_sh + i * p.q_sn; }
fn k_at(bh: u32, i: u32) -> u32 { return p.k_off + (bh / (p.heads / p.group)) * p.k_sb + (bh % (p.heads / p.group)) * p.k_sh + i * p.k_sn; }
fn v_at(bh: u32, i: u32) -> u32 { return p.v_off + (bh / (p.heads / p.group)) * p.v_sb + (bh % (p.heads / p.group)) * p.v_sh + i * p.v_sn; }
${fetch("q", "p.q_len", "load_q(q_at(bh, i) + d * p.q_sd)")}
${fetch("g", "p.q_len", "go[(bh * p.q_len + i) * p.value_dim + d]")}
${fetch("k", "p.kv_len", "load_k(k_at(bh, i) + d * p.k_sd)")}
${fetch("v", "p.kv_len", "load_v(v_at(bh, i) + d * p.v_sd)")}
@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let owned = wg.x;
  let bh_own = wg.y;
  let tr = lid / HALF;
  let tc = lid % HALF;
  let own = lid % ${B}u;
  let grp = lid / ${B}u;
  let row = owned * ${B}u + own;
  let own0 = owned * ${B}u;
  let D = p.head_dim;
  let V = p.value_dim;
  ${nParams ? `var pacc: array<f32, ${nParams}>;` : ""}
  let owns = row < ${ownLen};
  if (owns) {
    ${zero}
  }
  let starts = tiles[0];
  let entries = tiles[1];
  ${headWalkWgsl(kv, loadQ.replaceAll("qt0", "own0"))}
    let base = tiles[2u + bh_q] + owned;
    let last = tiles[starts + base + 1u];
    for (var e = tiles[starts + base]; e < last; e++) {
      let word = tiles[entries + e];
      let walk0 = (word >> 1u) * ${B}u;
      let partial = (word & 1u) == 1u;
      let qt0 = ${qRows};
      let kt0 = ${kRows};
      workgroupBarrier();
      ${kv ? loadQ : ""}
      workgroupBarrier();
      var sc = vec4<f32>();
      var dp = vec4<f32>();
      ${dots("q", "k", "sc", "D")}
      ${dots("g", "v", "dp", "V")}
      ${[0, 1, 2, 3].map(entry).join("\n      ")}
      workgroupBarrier();
      if (owns) { ${accumulate} }
    }
  }
  if (owns) {
    ${overDims("D", `${acc("a")} = ${acc("a")} * p.scale;`)}
  }
  ${
    nParams
      ? `for (var n = 0u; n < ${nParams}u; n++) { out_p[((bh_own * p.rows + owned) * ${T}u + lid) * ${nParams}u + n] = pacc[n]; }`
      : ""
  }
}
`;
}
