/**
 * The flash-attention kernel template. A workgroup of `(tile.q/4) × (tile.kv/keysPerThread)`
 * invocations owns `tile.q` query rows and streams key tiles of `tile.kv` rows:
 *
 * - S = Q·Kᵀ: each invocation accumulates 4 rows × `keysPerThread` keys (strided across the
 *   tile, so stores of P are bank-conflict free) in `vec4` registers; the head dimension streams
 *   through two workgroup buffers in chunks of `dk` (Q pre-scaled on load), read as `vec4`s so
 *   one load feeds four rows or four keys, with one barrier per chunk;
 * - online softmax in f32, the rows' maxima reduced as `vec4`s across the invocations of a row;
 * - O += P·V: each invocation keeps 4 rows × `dc` `vec4` columns of O in named registers; P goes
 *   through workgroup memory transposed, V in chunks of `kc` keys.
 *
 * One workgroup array serves both phases: the Q/K chunks during S, then P and the V chunk.
 * Global loads run one chunk ahead in registers. With `vec` (head dims and strides multiples of
 * four, unit stride along the head dimension) every global load reads four elements at once.
 * The inner loops are unrolled `unroll` times by the generator (the shader compilers we measured
 * do not unroll them), and the register blocks are named registers, never indexed private arrays.
 * Where the tile allows, each 32 consecutive invocations cover 4 key columns × 8 row groups, so
 * a warp's workgroup loads touch few distinct addresses.
 *
 * With grouped heads the workgroup's rows interleave the group's query heads (row
 * `f = qIdx·pack + head-in-group`), so each K/V tile is read once for the whole group.
 * Empty tiles (from the plan's block layout) are skipped; `mask_mod` runs on partial tiles only,
 * and so does the `P·V` loop that skips hidden keys (see `valueProductsWgsl`).
 *
 * The generator is split by idea, each fragment reading one `FlashFrame` (`_flash_geometry.ts`):
 * staging (`_flash_staging_wgsl.ts`), the two products (`_flash_products_wgsl.ts`), the online
 * softmax with its row reductions (`_flash_softmax_wgsl.ts`) and the epilogue
 * (`_flash_epilogue_wgsl.ts`); this file holds the kernel's skeleton and the sizing a backend
 * asks for. A variant replaces one fragment.
 * @module
 */
import type { KernelPlan } from "../../../core/lower.ts";
import type { TensorDesc } from "../../../core/tensor_desc.ts";
import { modifiersWgsl, NEG_WGSL, paramsWgsl, tileShareWgsl } from "./_common_wgsl.ts";
import { epilogueWgsl } from "./_flash_epilogue_wgsl.ts";
import {
  acc,
  each,
  flashFrame,
  type FlashParams,
  flashPrefetchItems,
  type FlashShape,
  flashWorkgroupBytes,
  qkItemCount,
  ROWS,
  sreg,
} from "./_flash_geometry.ts";
import { scoreStepsWgsl, valueProductsWgsl } from "./_flash_products_wgsl.ts";
import { modifiedScoresWgsl, onlineSoftmaxWgsl } from "./_flash_softmax_wgsl.ts";
import {
  inputsWgsl,
  qkLoad,
  qkStores,
  qRowsWgsl,
  stagingWgsl,
  vLoad,
  vStores,
} from "./_flash_staging_wgsl.ts";
export {
  type FlashParams,
  flashPrefetchItems,
  type FlashShape,
  flashSubgroupsFit,
  flashThreads,
  flashWorkgroupBytes,
} from "./_flash_geometry.ts";

/** WGSL source of a flash kernel. */
export function flashWgsl(params: FlashParams): string {
  const f = flashFrame(params);
  const { g, groups, cols, qkItems, vItems, tk, warpX } = f;
  const { tile } = params;
  return `${paramsWgsl()}${inputsWgsl(params.dtype, params.vec)}
@group(0) @binding(4) var<storage, read> tiles: array<u32>;
@group(0) @binding(5) var<storage, read_write> out_buf: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse_buf: array<f32>;
${modifiersWgsl(params.mask, params.scoreMod, params.sinkLogits)}${NEG_WGSL}
const BQ: u32 = ${tile.q}u;
const BK: u32 = ${tile.kv}u;
const BQ4: u32 = ${f.tq}u;
const BK4: u32 = ${f.kslots}u;
const TK: u32 = ${tk}u;
const DK: u32 = ${params.dk}u;
const DVP4: u32 = ${g.dvp4}u;
const KC: u32 = ${params.kc}u;
const THREADS: u32 = ${f.threads}u;
const ALL_ROWS: u32 = ${tile.q + tile.kv}u;
const QK_ITEMS: u32 = ${qkItemCount(params)}u;
const V_ITEMS: u32 = KC * DVP4;
const NO_ROW: u32 = 0xffffffffu;
// Q/K chunk row strides, padded by one vec4 (unless swizzled) so that stores hit distinct banks.
const QS: u32 = ${g.qs}u;
const KS: u32 = ${g.ks}u;
const KOFF: u32 = ${params.dk * g.qs}u;
const CHUNK: u32 = ${g.chunk}u;
const VOFF: u32 = ${g.voff}u;

// S phase: two buffers of CHUNK vec4s, each a Q chunk [d][row/4] then a K chunk [d][key slot]
// at KOFF.
// P·V phase: P transposed [key][row/4] at 0, then the V chunk [key][d/4] (or row reductions).
var<workgroup> sh: array<vec4<f32>, ${g.slots}>;
${stagingWgsl(f)}

@compute @workgroup_size(${f.threads})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row_tile = wg.x;
  let unit = wg.y + p.head_base;
  let units = p.heads / p.pack;
  let b = unit / units;
  let u = unit % units;
  let kvh = (u * p.pack) / p.group;
  let D = p.head_dim;
  let DV = p.value_dim;
  let row_count = p.q_len * p.pack;
  ${
    warpX
      ? `let tx = lid % ${warpX}u + ${warpX}u * ((lid / 32u) % ${tk / warpX}u);
  let ty = (lid % 32u) / ${warpX}u + ${32 / warpX}u * ((lid / 32u) / ${tk / warpX}u);`
      : `let tx = lid % TK;
  let ty = lid / TK;`
  }
  let f0 = row_tile * BQ;
  let k_base = p.k_off + b * p.k_sb + kvh * p.k_sh;
  let v_base = p.v_off + b * p.v_sb + kvh * p.v_sh;

  // This invocation's four rows: head and query index.
  var hr: array<u32, 4>;
  var qr: array<u32, 4>;
  var rows_ok: array<bool, 4>;
  ${
    ROWS.map((r) =>
      `{ let f = f0 + ty * 4u + ${r}u; hr[${r}] = u * p.pack + f % p.pack; qr[${r}] = f / p.pack; rows_ok[${r}] = f < row_count; }`
    ).join("\n  ")
  }
  ${qRowsWgsl(f)}

  var m = vec4<f32>(NEG);
  var l = vec4<f32>(0.0);
  ${ROWS.flatMap((r) => cols.map((i) => `var ${acc(r, i)} = vec4<f32>(0.0);`)).join("\n  ")}

  // This row's share of its listed key tiles (see tileShareWgsl).
  ${tileShareWgsl("row_tile")}
  for (var e = first; e < last; e++) {
    let entry = tiles[entries + e];
    let col = entry >> 1u;
    let kind = select(2u, 1u, (entry & 1u) == 1u);
    let k0 = col * BK;
    let check = kind == 1u || k0 + BK > p.kv_len || f0 + BQ > row_count;

    ${
    ROWS.flatMap((r) => groups.map((gi) => `var ${sreg(r, gi)} = vec4<f32>(0.0);`)).join("\n    ")
  }
    ${each(qkItems, (j) => `var ${qkLoad(f, j, "0u")}`)}
    workgroupBarrier();
    ${qkStores(f, "0u")}
    workgroupBarrier();
    // Double-buffered chunks: the next chunk is loaded during this one's products and stored in
    // the other buffer, whose readers all passed the previous chunk's barrier.
    for (var dc = 0u; dc < D; dc += DK) {
      let buf = select(0u, CHUNK, (dc / DK) % 2u == 1u);
      let more = dc + DK < D;
      if (more) {
        ${each(qkItems, (j) => qkLoad(f, j, "dc + DK"))}
      }
      for (var d = 0u; d < DK; d += ${f.uQK}u) {
        ${scoreStepsWgsl(f)}
      }
      if (more) {
        ${qkStores(f, "CHUNK - buf")}
        workgroupBarrier();
      }
    }

    ${each(vItems, (j) => `var ${vLoad(f, j, "k0")}`)}
    ${modifiedScoresWgsl(f)}
    ${onlineSoftmaxWgsl(f)}
    for (var kc = 0u; kc < BK; kc += KC) {
      workgroupBarrier();
      ${vStores(f)}
      workgroupBarrier();
      if (kc + KC < BK) {
        ${each(vItems, (j) => vLoad(f, j, "k0 + kc + KC"))}
      }
      ${valueProductsWgsl(f)}
    }
  }

  ${epilogueWgsl(f)}
}
`;
}

/**
 * Whether q, k and v can be read four elements at a time: head and value dims multiples of
 * four, unit stride along the head dimension, every other stride and the offsets multiples of
 * four (so a `vec4` never straddles rows).
 */
export function flashVecAligned(
  plan: Pick<KernelPlan, "q" | "k" | "v" | "sizes">,
): boolean {
  const aligned = (d: TensorDesc) =>
    d.strides[3] === 1 && d.offset % 4 === 0 && d.strides.slice(0, 3).every((s) => s % 4 === 0);
  return plan.sizes.headDim % 4 === 0 && plan.sizes.valueDim % 4 === 0 &&
    aligned(plan.q) && aligned(plan.k) && aligned(plan.v);
}

const DK_CHOICES = [64, 32, 16, 8, 4];
const MAX_PREFETCH = 4;

/**
 * Chunk sizes of a flash kernel for a plan's dims on a device: the smallest head-dimension chunk
 * covering the head dim, else the largest, that fits workgroup memory with at most four
 * prefetched `vec4`s per invocation (the smallest fitting one if none does); then the largest
 * V chunk that fits.
 *
 * @returns `dk` and `kc`, or undefined if the tile cannot fit at all.
 */
export function flashChunks(
  workgroupBytes: number,
  shape: Omit<FlashShape, "dk" | "kc">,
  headDim: number,
): { dk: number; kc: number } | undefined {
  const fits = (dk: number, kc: number) =>
    flashWorkgroupBytes({ ...shape, dk, kc }) <= workgroupBytes;
  const usable = DK_CHOICES.filter((dk) => (!shape.vec || dk % 8 === 0) && fits(dk, 1));
  const light = usable.filter((dk) => flashPrefetchItems({ ...shape, dk, kc: 1 }) <= MAX_PREFETCH);
  const pool = light.length ? light : usable.slice(-1);
  const dk = pool.findLast((d) => d >= headDim) ?? pool[0];
  if (dk === undefined) return undefined;
  const kc = DK_CHOICES.concat([2, 1]).find((k) => shape.tile.kv % k === 0 && fits(dk, k));
  return kc === undefined ? undefined : { dk, kc };
}
