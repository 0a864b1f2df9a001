/**
 * The flash backward's tile kernel for hardware adapters: register blocks as in the forward
 * flash kernel (see `_backward_geometry.ts` for the layout). Per walked tile:
 *
 * - phase A: `S = Q·Kᵀ` and `dP = dO·Vᵀ`, 4 owned × 4 walked rows per invocation in named `vec4`
 *   registers (one `vec4` per walked row, lanes over owned rows), fed by one `vec4` load per
 *   operand and dim;
 * - `P = exp(mod(scale·S) − lse)`, `dS = P ∘ (dP − D) · mod′` in place, written to workgroup
 *   memory as `[walked row][owned rows]`, which is exactly the operand order phase B reads;
 * - phase B: `dV += Pᵀ·dO` and `dK += dSᵀ·Q` (`kv`) or `dQ += dS·K` (`q`), each invocation 4
 *   owned rows × `dc` `vec4` columns of one gradient, one weight `vec4` and `dc` operand `vec4`s
 *   per walked row.
 *
 * The `kv` pass has two halves of invocations: half 0 computes S, P, `P·mod′` and dV, half 1 dP,
 * dS and dK, so that each holds 32 accumulators at D128 rather than 64.
 *
 * All loops over dims and rows inside a chunk are unrolled by the generator (the shader compilers
 * measured neither unroll them nor keep indexed private arrays in registers). Global loads run a
 * chunk ahead in registers. Every sum keeps its one owner and fixed order, as in the software
 * variant, so two runs give identical bits.
 * @module
 */
import { paramsWgsl } from "./_common_wgsl.ts";
import { range, XYZW } from "./_flash_geometry.ts";
import { inputsWgsl } from "./_flash_staging_wgsl.ts";
import { BLOCK_DK, type BlockGeometry } from "./_backward_geometry.ts";
import { headWalkWgsl } from "./_backward_walk_wgsl.ts";
import type { BackwardTileParams } from "./backward_wgsl.ts";

/** A tensor a tile kernel stages: its row address, dim count and four-dim load. */
interface Source {
  /** The row's element address, or `NO_ROW` past the tensor's rows. */
  readonly row: (index: string) => string;
  readonly dim: "D" | "V";
  readonly fn: string;
}

const SOURCES: Record<"q" | "k" | "v" | "g", Source> = {
  q: { row: (i) => `select(NO_ROW, q_at(bh_q, ${i}), ${i} < p.q_len)`, dim: "D", fn: "item_q" },
  k: { row: (i) => `select(NO_ROW, k_at(bh_k, ${i}), ${i} < p.kv_len)`, dim: "D", fn: "item_k" },
  v: { row: (i) => `select(NO_ROW, v_at(bh_k, ${i}), ${i} < p.kv_len)`, dim: "V", fn: "item_v" },
  g: {
    row: (i) => `select(NO_ROW, (bh_q * p.q_len + ${i}) * V, ${i} < p.q_len)`,
    dim: "V",
    fn: "item_g",
  },
};

/** Four dims `[d, d + 4)` of a row as a `vec4`, zeros past the row's dims or rows. */
function itemFns(vec: boolean): string {
  const one = (name: string, dim: string, stride: string, load: (at: string) => string) =>
    vec
      ? `fn item_${name}(at: u32, d: u32) -> vec4<f32> {
  if (at == NO_ROW || d >= ${dim}) { return vec4<f32>(0.0); }
  return ${load(`at + d`)};
}`
      : `fn item_${name}(at: u32, d: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  if (at == NO_ROW) { return x; }
  for (var c = 0u; c < 4u; c++) { if (d + c < ${dim}) { x[c] = ${
        load(`at + (d + c) * ${stride}`)
      }; } }
  return x;
}`;
  const scalar = (name: string) => (at: string) =>
    vec ? `load4_${name}(${at})` : `load_${name}(${at})`;
  return [
    one("q", "D", "p.q_sd", scalar("q")),
    one("k", "D", "p.k_sd", scalar("k")),
    one("v", "V", "p.v_sd", scalar("v")),
    one("g", "V", "1u", (at) => vec ? `go[(${at}) >> 2u]` : `go[${at}]`),
  ].join("\n");
}

/** WGSL of a block kernel (hardware adapters); bindings as `backwardTileWgsl`. */
export function blockKernelWgsl(
  params: BackwardTileParams,
  g: BlockGeometry,
  modifiers: string,
): string {
  const { mode, gradient } = params;
  const kv = mode === "kv", vec = params.vec === true;
  const { groups: G, threads: T, tile } = g;
  const GG = G * G;
  const nParams = kv ? 0 : gradient?.dParams.length ?? 0;
  const rows4 = range(4);
  const perOp = BLOCK_DK / G;
  const itemsA = range(g.itemsA);
  // Phase-A operand of item j: its position among an invocation's operands (own S, walked S,
  // own dP, walked dP; `kv` halves stage two each, half 1 the dP pair) and its sources.
  const opOf = (j: number) => Math.floor(j / perOp);
  const owned = (j: number) => opOf(j) % 2 === 0;
  const srcA = (j: number): [Source, Source | undefined] => {
    const names = kv ? ["k", "q"] : ["q", "k", "g", "v"];
    const name = names[opOf(j)] as keyof typeof SOURCES;
    return [
      SOURCES[name],
      kv ? SOURCES[({ k: "v", q: "g" } as const)[name as "k" | "q"]] : undefined,
    ];
  };
  const rowAt = (j: number) => {
    const first = `${owned(j) ? "own0" : "walk0"} + arow${j}`;
    const [a, b] = srcA(j);
    return b ? `select(${a.row(first)}, ${b.row(first)}, half == 1u)` : a.row(first);
  };
  const loadA = (j: number, dc: string) => {
    const [a, b] = srcA(j);
    const call = (src: Source) => `xa${j} = ${src.fn}(ra${j}, ${dc} + ad${j});`;
    return b ? `if (half == 0u) { ${call(a)} } else { ${call(b)} }` : call(a);
  };
  const storeA = (j: number, buf: string) =>
    `store_a(${buf} + ${kv ? "half_a + " : ""}${opOf(j) * g.opSlots}u, arow${j}, ad${j}, xa${j});`;
  // Walked row j's scores in s<j> (and dP in t<j> for `q`), lanes over the four owned rows.
  // A `kv` half reads its own operand pair at `half_a`: S for half 0, dP for half 1, into s<j>.
  const stepA = (d: number) =>
    [
      `let a${d} = sh[hb + ${d * g.aStride}u + oy];`,
      `let b${d} = sh[hb + ${g.opSlots + d * g.aStride}u + wx];`,
      ...rows4.map((j) => `s${j} += a${d} * b${d}.${XYZW[j]};`),
      ...(kv ? [] : [
        `let c${d} = sh[hb + ${2 * g.opSlots + d * g.aStride}u + oy];`,
        `let e${d} = sh[hb + ${3 * g.opSlots + d * g.aStride}u + wx];`,
        ...rows4.map((j) => `t${j} += c${d} * e${d}.${XYZW[j]};`),
      ]),
    ].join(" ");
  // Query and key index of owned row r, walked row j.
  const [qi, kj] = kv
    ? ["walk0 + 4u * wx + ${j}u", "own0 + 4u * oy + ${r}u"]
    : ["own0 + 4u * oy + ${r}u", "walk0 + 4u * wx + ${j}u"];
  const at = (s: string, j: number, r: number) =>
    s.replace("${j}", String(j)).replace("${r}", String(r));
  const modArgs = "i32(b), i32(h), i32(i), i32(j), i32(p.q_len), i32(p.kv_len), x";
  const grad = gradient ? ` * score_mod_grad(${modArgs})` : "";
  // `kv` half 0: P into s<j>, `P·mod′` into t<j> (half 1 multiplies it by dP − D: a zero there
  // stays zero, so hidden scores never meet dP). `q`: P and dS directly.
  const element = (j: number, r: number) => {
    const lane = `${XYZW[r]}`;
    const stats = kv ? `st${j}` : `st${r}`;
    return `{
      let i = ${at(qi, j, r)};
      let j = ${at(kj, j, r)};
      let x = s${j}.${lane} * p.scale;
      var ok = ${stats}.x >= NEG && j < p.kv_len;
      ${params.mask ? `if (partial && ok) { ok = mask_mod(${modArgs}); }` : ""}
      let pr = exp(${params.scoreMod ? `score_mod(${modArgs})` : "x"} - ${stats}.x);
      ${
      kv
        ? `s${j}.${lane} = select(0.0, pr, ok);
      t${j}.${lane} = select(0.0, pr${grad}, ok);`
        : `let dsm = pr * (t${j}.${lane} - ${stats}.y);
      ${
          range(nParams).map((n) =>
            `pacc${n} += select(0.0, dsm * param_grad_${n}(${modArgs}), ok);`
          ).join(" ")
        }
      t${j}.${lane} = select(0.0, dsm${grad}, ok);`
    }
    }`;
  };
  const wAt = (base: string, j: number) => `sh[${base} + (4u * wx + ${j}u) * ${G}u + oy]`;
  const weights = kv
    ? `if (half == 0u) {
        ${rows4.flatMap((j) => rows4.map((r) => element(j, r))).join("\n        ")}
        ${
      rows4.map((j) => `${wAt("WP", j)} = s${j};\n        ${wAt("WS", j)} = t${j};`).join(
        "\n        ",
      )
    }
      }
      ${range(g.itemsB).map(storeB).join("\n      ")}
      workgroupBarrier();
      if (half == 1u) {
        ${
      rows4.map((j) =>
        `{ let w = ${wAt("WS", j)}; ${
          wAt("WS", j)
        } = select(vec4<f32>(0.0), w * (s${j} - st${j}.y), w != vec4<f32>(0.0)); }`
      ).join("\n        ")
    }
      }`
    : `${rows4.flatMap((j) => rows4.map((r) => element(j, r))).join("\n      ")}
      ${rows4.map((j) => `${wAt("WS", j)} = t${j};`).join("\n      ")}
      ${range(g.itemsB).map(storeB).join("\n      ")}`;
  // Phase B: `kv` half 0 dV += Pᵀ·dO (weights WP, operands XV), half 1 dK += dSᵀ·Q (WS, XQ);
  // `q` dQ += dS·K (WS, XQ). Accumulators a<r>_<m>: owned row r, vec4 column cg + G·m.
  const dc = kv ? Math.max(g.dcD, g.dcV) : g.dcD;
  const xRow = kv && g.d4p !== g.v4p ? "x_row" : `${g.d4p}u`;
  const stepB = (u: number) =>
    [
      `let w${u} = sh[wb + (c0 + ${u}u) * ${G}u + og];`,
      ...range(dc).map((m) => `let x${m}_${u} = sh[xb + ${u}u * ${xRow} + ${m * G}u + cg];`),
      ...range(dc).flatMap((m) => rows4.map((r) => `a${r}_${m} += w${u}.${XYZW[r]} * x${m}_${u};`)),
    ].join(" ");
  const accs = range(dc).flatMap((m) => rows4.map((r) => `a${r}_${m}`));
  const ownLen = kv ? "p.kv_len" : "p.q_len";
  const writes = (buffer: string, dim: string, cols: number, factor: string) =>
    range(cols).flatMap((m) =>
      rows4.map((r) =>
        `{ let row = own0 + 4u * og + ${r}u; let d0 = 4u * (cg + ${m * G}u);
    if (row < ${ownLen}) { let at = (bh_own * ${ownLen} + row) * ${dim} + d0; ${
          rows4.map((c) =>
            `if (d0 + ${c}u < ${dim}) { ${buffer}[at + ${c}u] = a${r}_${m}.${XYZW[c]}${factor}; }`
          ).join(" ")
        } } }`
      )
    ).join("\n    ");
  const write = kv
    ? `if (half == 0u) {
    ${writes("out_v", "V", g.dcV, "")}
  } else {
    ${writes("out_a", "D", g.dcD, " * p.scale")}
  }`
    : writes("out_a", "D", g.dcD, " * p.scale");
  const statsWalk = kv
    ? rows4.map((j) => `let st${j} = row_stats(bh_q, walk0 + 4u * wx + ${j}u);`).join("\n      ")
    : "";
  const statsOwn = kv
    ? ""
    : rows4.map((r) => `let st${r} = row_stats(bh_q, own0 + 4u * oy + ${r}u);`).join("\n  ");
  const wOff = kv ? 2 * g.weightSlots : g.weightSlots;
  const tileLoop = headWalkWgsl(kv, statsOwn);
  return `${paramsWgsl()}${inputsWgsl(params.dtype, vec)}
@group(0) @binding(4) var<storage, read> tiles: array<u32>;
@group(0) @binding(5) var<storage, read> go: array<${vec ? "vec4<f32>" : "f32"}>;
@group(0) @binding(6) var<storage, read> stats: array<vec2<f32>>;
@group(0) @binding(8) var<storage, read_write> out_a: array<f32>;
${kv ? "@group(0) @binding(9) var<storage, read_write> out_v: array<f32>;" : ""}
${nParams ? "@group(0) @binding(9) var<storage, read_write> out_p: array<f32>;" : ""}
${modifiers}
const D = ${params.headDim}u;
const V = ${params.valueDim}u;
const NEG: f32 = -3.0e38f;
const NO_ROW: u32 = 0xffffffffu;
const AS: u32 = ${g.aStride}u;
const WP: u32 = 0u;
const WS: u32 = ${kv ? g.weightSlots : 0}u;
const XQ: u32 = ${wOff}u;
const XV: u32 = ${wOff + g.rc * g.d4p}u;
// Phase A: two buffers of four operands [dim][row/4]; phase B: P and dS [walked row][owned/4],
// then the operand chunk [row][dim/4].
var<workgroup> sh: array<vec4<f32>, ${g.slots}>;
fn q_at(bh: u32, i: u32) -> u32 { return p.q_off + (bh / p.heads) * p.q_sb + (bh % p.heads) * p.q_sh + i * p.q_sn; }
fn k_at(bh: u32, i: u32) -> u32 { return p.k_off + (bh / (p.heads / p.group)) * p.k_sb + (bh % (p.heads / p.group)) * p.k_sh + i * p.k_sn; }
fn v_at(bh: u32, i: u32) -> u32 { return p.v_off + (bh / (p.heads / p.group)) * p.v_sb + (bh % (p.heads / p.group)) * p.v_sh + i * p.v_sn; }
${itemFns(vec)}
fn row_stats(bh: u32, i: u32) -> vec2<f32> {
  if (i >= p.q_len) { return vec2<f32>(bitcast<f32>(0xff800000u), 0.0); }
  return stats[bh * p.q_len + i];
}
// Item x of an operand (row, dims d..d+3) stored transposed; pairs of items hold 8 dims of a row.
// Constant lanes of x throughout: a dynamically indexed vector may leave the registers.
fn store_a(base: u32, row: u32, d: u32, x: vec4<f32>) {
  let at = base + d * AS + row / 4u;
  let lane = row % 4u;
  sh[at][lane] = x.x;
  sh[at + AS][lane] = x.y;
  sh[at + 2u * AS][lane] = x.z;
  sh[at + 3u * AS][lane] = x.w;
}
@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let owned = wg.x;
  let bh_own = wg.y;
  let own0 = owned * ${tile}u;
  let half = lid / ${GG}u;
  let l = lid % ${GG}u;
  ${
    G >= 8
      ? `// Each 32 invocations cover 8 × 4 blocks, so a warp's loads touch few distinct addresses.
  let warp = l / 32u;
  let oy = l % 8u + 8u * (warp % ${G / 8}u);
  let wx = (l % 32u) / 8u + 4u * (warp / ${G / 8}u);`
      : `let oy = l % ${G}u;
  let wx = l / ${G}u;`
  }
  let og = oy;
  let cg = wx;
  let half_a = half * ${2 * g.opSlots}u;
  let wb = ${kv ? `half * ${g.weightSlots}u` : "WS"};
  let xb = ${kv ? "select(XV, XQ, half == 1u)" : "XQ"};
  ${kv && g.d4p !== g.v4p ? `let x_row = select(${g.v4p}u, ${g.d4p}u, half == 1u);` : ""}
  ${itemsA.map((j) => `let kk${j} = l + ${(j % perOp) * GG}u;`).join("\n  ")}
  ${itemsA.map((j) => `let arow${j} = (kk${j} / 2u) % ${tile}u;`).join("\n  ")}
  ${
    itemsA.map((j) => `let ad${j} = 4u * (kk${j} % 2u + 2u * (kk${j} / ${2 * tile}u));`).join(
      "\n  ",
    )
  }
  ${accs.map((a) => `var ${a} = vec4<f32>(0.0);`).join("\n  ")}
  ${range(nParams).map((n) => `var pacc${n} = 0.0;`).join("\n  ")}
  ${itemsA.map((j) => `var xa${j}: vec4<f32>;`).join("\n  ")}
  ${range(g.itemsB).map((j) => `var xb${j}: vec4<f32>;`).join("\n  ")}
  let starts = tiles[0];
  let entries = tiles[1];
  ${tileLoop}
    ${itemsA.filter(owned).map((j) => `let ra${j} = ${rowAt(j)};`).join("\n    ")}
    let base = tiles[2u + bh_q] + owned;
    let last = tiles[starts + base + 1u];
    for (var e = tiles[starts + base]; e < last; e++) {
      let word = tiles[entries + e];
      let walk0 = (word >> 1u) * ${tile}u;
      let partial = (word & 1u) == 1u;
      ${itemsA.filter((j) => !owned(j)).map((j) => `let ra${j} = ${rowAt(j)};`).join("\n      ")}
      ${statsWalk}
      ${itemsA.map((j) => loadA(j, "0u")).join("\n      ")}
      ${
    rows4.map((j) => `var s${j} = vec4<f32>(0.0);\n      var t${j} = vec4<f32>(0.0);`).join(
      "\n      ",
    )
  }
      workgroupBarrier();
      ${itemsA.map((j) => storeA(j, "0u")).join("\n      ")}
      workgroupBarrier();
      for (var dc = 0u; dc < ${g.dimsA}u; dc += ${BLOCK_DK}u) {
        let buf = select(0u, ${g.chunkSlots}u, (dc / ${BLOCK_DK}u) % 2u == 1u);
        let hb = buf${kv ? " + half_a" : ""};
        let more = dc + ${BLOCK_DK}u < ${g.dimsA}u;
        if (more) {
          ${itemsA.map((j) => loadA(j, `dc + ${BLOCK_DK}u`)).join("\n          ")}
        }
        ${range(BLOCK_DK).map(stepA).join("\n        ")}
        if (more) {
          ${itemsA.map((j) => storeA(j, `${g.chunkSlots}u - buf`)).join("\n          ")}
          workgroupBarrier();
        }
      }
      ${range(g.itemsB).map((j) => loadB(j, "0u")).join("\n      ")}
      workgroupBarrier();
      ${weights}
      workgroupBarrier();
      for (var c0 = 0u; c0 < ${tile}u; c0 += ${g.rc}u) {
        let more = c0 + ${g.rc}u < ${tile}u;
        if (more) {
          ${range(g.itemsB).map((j) => loadB(j, `c0 + ${g.rc}u`)).join("\n          ")}
        }
        ${range(g.rc).map(stepB).join("\n        ")}
        if (more) {
          workgroupBarrier();
          ${range(g.itemsB).map(storeB).join("\n          ")}
          workgroupBarrier();
        }
      }
    }
  }
  ${write}
  ${
    range(nParams).map((n) =>
      `out_p[((bh_own * p.rows + owned) * ${T}u + lid) * ${nParams}u + ${n}u] = pacc${n};`
    ).join("\n  ")
  }
}
`;

  // Phase-B items: the chunk's Q (or K) rows then its dO rows, `vec4` columns fastest.
  function loadB(j: number, c0: string): string {
    const e = `lid + ${j * T}u`;
    const part = (src: Source, base: string, width: number) =>
      `${src.fn}(${src.row(`walk0 + ${c0} + ${base} / ${width}u`)}, 4u * (${base} % ${width}u))`;
    const first = g.rc * g.d4p;
    return `{ let e = ${e}; xb${j} = vec4<f32>(0.0); if (e < ${first}u) { xb${j} = ${
      part(kv ? SOURCES.q : SOURCES.k, "e", g.d4p)
    }; }${
      kv
        ? ` else if (e < ${g.xSlots}u) { let f = e - ${first}u; xb${j} = ${
          part(SOURCES.g, "f", g.v4p)
        }; }`
        : ""
    } }`;
  }
  function storeB(j: number): string {
    return `if (lid + ${j * T}u < ${g.xSlots}u) { sh[XQ + lid + ${j * T}u] = xb${j}; }`;
  }
}
