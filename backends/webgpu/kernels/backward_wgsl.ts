/**
 * The flash backward's tile kernels (FlashAttention-2 by recomputation, without float atomics;
 * `backward_prep_wgsl.ts` makes the `dO` rows and `D = rowsum(dO ∘ O)` they read). Two passes then recompute `S = scale·Q·Kᵀ`, `P = exp(mod(S) − lse)`,
 * `dP = dO·Vᵀ` and `dS = P ∘ (dP − D) · mod′(S)` per (query tile, key tile) pair of the block
 * layout: in the `kv` pass each workgroup owns a key tile and walks the query tiles that see it
 * (a group's query heads in order) to accumulate `dK = scale·dSᵀ·Q` and `dV = Pᵀ·dO`; in the `q`
 * pass each owns a query tile and walks its key tiles for `dQ = scale·dS·K` and the head
 * parameters' per-thread partial sums. Every sum has one owner and a fixed order, so two runs give
 * identical bits.
 * @module
 */
import type { Expr } from "../../../core/expr.ts";
import type { ScoreModGradient } from "../../../core/score_mod_gradient.ts";
import { type LiteralTable, literalWords, toWgsl } from "../../../core/to_wgsl.ts";
import type { DType } from "../../../core/tensor_desc.ts";
import { inputsWgsl, LITERALS_BINDING, paramsWgsl } from "./_common_wgsl.ts";

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
   * For software adapters: loop bounds read from the uniforms rather than constants, and the
   * accumulators in workgroup memory rather than local arrays. Their JIT takes minutes on
   * unrolled loops over local arrays; hardware wants both.
   */
  readonly software?: boolean;
}

/** Threads of a tile pass: each computes a 2×2 block of the tile's scores. */
export function backwardThreads(tile: number): number {
  return tile * tile / 4;
}

/** Shape of the shared tiles: row strides padded odd (no bank conflicts) and to whole groups. */
function strides(tile: number, headDim: number, valueDim: number) {
  const groups = tile / 4;
  const per = (n: number) => Math.max(1, Math.ceil(n / groups));
  const odd = (n: number) => n | 1;
  return {
    groups,
    perD: per(headDim),
    perV: per(valueDim),
    sd: odd(per(headDim) * groups),
    sv: odd(per(valueDim) * groups),
    ss: tile + 1,
  };
}

/** Bytes of workgroup memory a tile pass uses (to choose a tile the device fits). */
export function backwardSharedBytes(tile: number, headDim: number, valueDim: number): number {
  const s = strides(tile, headDim, valueDim);
  return 4 * (2 * tile * s.sd + 2 * tile * s.sv + 2 * tile * s.ss + 2 * tile);
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
 * Grid (tiles owned, B·H of the owner). A thread computes a 2×2 block of the tile's scores, and
 * owns dims `grp + G·m` of row `own` of the owned tile's gradients.
 */
export function backwardTileWgsl(params: BackwardTileParams): string {
  const { mode, tile: B, headDim, valueDim, gradient } = params;
  const T = backwardThreads(B);
  const s = strides(B, headDim, valueDim);
  const nParams = mode === "q" ? gradient?.dParams.length ?? 0 : 0;
  const kv = mode === "kv", soft = params.software === true;
  const ownLen = kv ? "p.kv_len" : "p.q_len";
  // Tile elements: shared memory on hardware, the buffers themselves on software adapters.
  const tile = (name: string, r: string, d: string) =>
    soft
      ? `g${name}(${"qg".includes(name) ? "bh_q, qt0" : "bh_k, kt0"} + ${r}, ${d})`
      : `${name}s[(${r}) * ${"qk".includes(name) ? "SD" : "SV"} + ${d}]`;
  // Accumulators: local arrays on hardware, the (exclusively owned) output rows on software.
  const acc = (name: "a" | "v") =>
    soft
      ? `out_${name}[(bh_own * ${ownLen} + row) * ${name === "a" ? "D" : "V"} + d]`
      : `acc_${name}[m]`;
  const per = (dim: "D" | "V") =>
    soft ? `(${dim} + G - 1u - grp) / G` : `${dim === "D" ? s.perD : s.perV}u`;
  // Hardware: unrolled, so the local arrays are indexed by constants and stay in registers.
  const overDims = (dim: "D" | "V", body: string) =>
    soft ? `for (var m = 0u; m < ${per(dim)}; m++) { let d = grp + G * m; ${body} }` : Array.from(
      { length: dim === "D" ? s.perD : s.perV },
      (_, m) => `{ let d = grp + G * ${m}u; ${body.replaceAll("[m]", `[${m}]`)} }`,
    ).join("\n      ");
  const qRows = kv ? "walk0" : "own0", kRows = kv ? "own0" : "walk0";
  // A row's address once per load, not per element (index arithmetic outweighed the FMAs).
  const rowBase: Record<string, [string, string, string, string]> = {
    q: ["q_at(bh_q, 0u)", "p.q_sn", "p.q_sd", "load_q"],
    g: ["bh_q * p.q_len * V", "V", "1u", "go"],
    k: ["k_at(bh_k, 0u)", "p.k_sn", "p.k_sd", "load_k"],
    v: ["v_at(bh_k, 0u)", "p.v_sn", "p.v_sd", "load_v"],
  };
  const load = (name: string, first: string, dim: "D" | "V") => {
    if (soft) return "";
    const [base, sn, sd, fn] = rowBase[name];
    const len = "qg".includes(name) ? "p.q_len" : "p.kv_len";
    const read = fn === "go" ? `go[at]` : `${fn}(at)`;
    return `{
      let base = ${base};
      for (var x = lid; x < ${B}u * ${dim}; x += ${T}u) {
        let r = x / ${dim};
        let d = x % ${dim};
        let i = ${first} + r;
        var val = 0.0;
        if (i < ${len}) { let at = base + i * ${sn} + d * ${sd}; val = ${read}; }
        ${name}s[r * S${dim} + d] = val;
      }
    }`;
  };
  const loadQ = `${load("q", qRows, "D")}\n${load("g", qRows, "V")}
    for (var r = lid; r < ${B}u; r += ${T}u) {
      let i = ${qRows} + r;
      rs[r] = select(vec2<f32>(NEG, 0.0), stats[min(bh_q * p.q_len + i, arrayLength(&stats) - 1u)], i < p.q_len);
    }`;
  const loadK = `${load("k", kRows, "D")}\n${load("v", kRows, "V")}`;
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
  const scores = `var sc = vec4<f32>();
    var dp = vec4<f32>();
    ${dots("q", "k", "sc", "D")}
    ${dots("g", "v", "dp", "V")}
    ${[0, 1, 2, 3].map(entry).join("\n    ")}
    workgroupBarrier();`;
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
  const outs = kv
    ? [["a", "D", " * p.scale"], ["v", "V", ""]] as const
    : [["a", "D", " * p.scale"]] as const;
  const zero = soft ? outs.map(([n, dim]) => overDims(dim, `${acc(n)} = 0.0;`)).join("\n    ") : "";
  const write = outs.map(([n, dim, factor]) =>
    soft ? factor ? overDims(dim, `${acc(n)} = ${acc(n)}${factor};`) : "" : overDims(
      dim,
      `if (d < ${dim}) { out_${n}[(bh_own * ${ownLen} + row) * ${dim} + d] = acc_${n}[m]${factor}; }`,
    )
  ).join("\n    ");
  const fetch = (name: string, len: string, value: string) =>
    `fn g${name}(bh: u32, i: u32, d: u32) -> f32 { if (i >= ${len}) { return 0.0; } return ${value}; }`;
  const shared = (name: string, stride: number) =>
    soft ? "" : `var<workgroup> ${name}: array<f32, ${B * stride}>;`;
  return `${paramsWgsl()}${inputsWgsl(params.dtype)}
@group(0) @binding(4) var<storage, read> tiles: array<u32>;
@group(0) @binding(5) var<storage, read> go: array<f32>;
@group(0) @binding(6) var<storage, read> stats: array<vec2<f32>>;
@group(0) @binding(8) var<storage, read_write> out_a: array<f32>;
${kv ? "@group(0) @binding(9) var<storage, read_write> out_v: array<f32>;" : ""}
${nParams ? "@group(0) @binding(9) var<storage, read_write> out_p: array<f32>;" : ""}
${backwardModifiers(params.mask, params.scoreMod, gradient).wgsl}
${soft ? "" : `const D = ${headDim}u;\nconst V = ${valueDim}u;`}
const SD = ${s.sd}u;
const SV = ${s.sv}u;
const SS = ${s.ss}u;
const G = ${s.groups}u;
const HALF = ${B / 2}u;
const NEG: f32 = -3.0e38f;
${shared("qs", s.sd)}
${shared("gs", s.sv)}
${shared("ks", s.sd)}
${shared("vs", s.sv)}
var<workgroup> ps: array<f32, ${B * s.ss}>;
var<workgroup> ss: array<f32, ${B * s.ss}>;
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
  ${soft ? "let D = p.head_dim;\n  let V = p.value_dim;" : ""}
  ${soft ? "" : `var acc_a: array<f32, ${s.perD}>;`}
  ${kv && !soft ? `var acc_v: array<f32, ${s.perV}>;` : ""}
  ${nParams ? `var pacc: array<f32, ${nParams}>;` : ""}
  let owns = row < ${ownLen};
  ${soft ? `if (owns) {\n    ${zero}\n  }` : ""}
  let starts = tiles[0];
  let entries = tiles[1];
  ${
    kv
      ? `let kv_heads = p.heads / p.group;
  let b = bh_own / kv_heads;
  let bh_k = bh_own;
  ${loadK}
  for (var h = (bh_own % kv_heads) * p.group; h < (bh_own % kv_heads + 1u) * p.group; h++) {
    let bh_q = b * p.heads + h;`
      : `let b = bh_own / p.heads;
  let h = bh_own % p.heads;
  let bh_q = bh_own;
  let bh_k = b * (p.heads / p.group) + h / p.group;
  ${loadQ.replaceAll("qt0", "own0")}
  {`
  }
    let base = tiles[2u + bh_q] + owned;
    let last = tiles[starts + base + 1u];
    for (var e = tiles[starts + base]; e < last; e++) {
      let word = tiles[entries + e];
      let walk0 = (word >> 1u) * ${B}u;
      let partial = (word & 1u) == 1u;
      let qt0 = ${qRows};
      let kt0 = ${kRows};
      workgroupBarrier();
      ${kv ? loadQ : loadK}
      workgroupBarrier();
      ${scores}
      ${soft ? `if (owns) { ${accumulate} }` : accumulate}
    }
  }
  if (owns) {
    ${write}
  }
  ${
    nParams
      ? `for (var n = 0u; n < ${nParams}u; n++) { out_p[((bh_own * p.rows + owned) * ${T}u + lid) * ${nParams}u + n] = pacc[n]; }`
      : ""
  }
}
`;
}
