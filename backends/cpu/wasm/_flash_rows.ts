/**
 * The flash loop over packed inputs, one query-tile row at a time: `S = Q · Kᵀ · scale` (gemm),
 * the mask and score modifier on partial tiles only (TypeScript, through compiled Exprs), the
 * online softmax (SIMD), `O += P · V` (gemm), then `out = O / sum` and `lse`. A row's result
 * depends only on its own tiles, so any split of rows across threads gives the same bits.
 * @module
 */
import { type Bounds, interval } from "../../../core/interval.ts";
import { firstRow, type TileLists } from "../../../core/tile_lists.ts";
import { compileKeyPieces, type Pieces, type PiecesFn } from "../../../core/_key_pieces.ts";
import { type CompiledExpr, compileExpr, type ExprEnv } from "../../../core/evaluate.ts";
import type { Expr } from "../../../core/expr.ts";
import type { KernelPlan } from "../../../core/lower.ts";
import type { FlashRegions } from "./_flash_regions.ts";
import type { MicroKernels } from "./_micro_kernels.ts";
import type { WasmEngine } from "./_engine.ts";
import { GEMM_ROWS } from "./_gemm.ts";
import { tileFinite } from "./_flash_pack.ts";
import { finishRow } from "../_finish.ts";

/** Everything a thread needs to run rows of a packed flash run. */
export interface FlashRowsContext {
  readonly kernels: MicroKernels;
  /** A view of the whole WebAssembly memory. */
  readonly memory: Float32Array;
  readonly plan: KernelPlan;
  /** The plan's block layout (tile rows, columns and kinds). */
  readonly layout: Pick<
    TileLists,
    "rows" | "pack" | "unitRow" | "rowStart" | "tileCol" | "partial"
  >;
  readonly regions: FlashRegions;
  readonly mask?: CompiledExpr;
  /** The mask's closed-form pieces along the keys, where it has them (see `_key_pieces.ts`). */
  readonly maskPieces?: PiecesFn;
  readonly scoreMod?: CompiledExpr;
  readonly env: ExprEnv;
}

/**
 * The context a thread runs rows with: the whole memory (grown to the run's regions), the
 * kernels for the run's shape, and the plan's Exprs compiled.
 */
export function flashRowsContext(
  engine: WasmEngine,
  plan: KernelPlan,
  layout: FlashRowsContext["layout"],
  regions: FlashRegions,
): FlashRowsContext {
  const { headDim, qLen, kvLen } = plan.sizes;
  return {
    kernels: engine.kernels({ headDim, tileCols: regions.tileCols, valueCols: regions.valueCols }),
    memory: engine.reserve(regions.bytes),
    plan,
    layout,
    regions,
    mask: plan.mask && compileExpr(plan.mask),
    maskPieces: plan.mask && compileKeyPieces(plan.mask),
    scoreMod: plan.scoreMod && compileExpr(plan.scoreMod),
    env: { b: 0, h: 0, qIdx: 0, kvIdx: 0, qLen, kvLen, score: 0 },
  };
}

/** The most negative f32: a running maximum that `exp(old - new)` turns into 0, never NaN. */
const LOWEST_F32 = -3.4028234663852886e38;

/**
 * Runs query-tile rows `[rowFrom, rowTo)` of head `(b, h)` with scratch block `thread`.
 */
export function runFlashRows(
  ctx: FlashRowsContext,
  b: number,
  h: number,
  rowFrom: number,
  rowTo: number,
  thread: number,
): void {
  const { kernels, memory, plan, layout, regions: r } = ctx;
  const { heads, kvHeads, qLen, kvLen, headDim } = plan.sizes;
  const kvHead = b * kvHeads + Math.floor(h / (heads / kvHeads));
  const qBase = r.q + (b * heads + h) * r.qRows * headDim * 4;
  const ktBase = r.kt + kvHead * r.kvTiles * headDim * r.tileCols * 4;
  const vBase = r.v + kvHead * kvLen * r.valueCols * 4;
  const scratch = r.scratch + thread * r.scratchBytes;
  const scores = scratch + r.scores, acc = scratch + r.acc, stats = scratch + r.stats;
  const finite = new Uint8Array(memory.buffer, r.finite + kvHead * r.kvTiles, r.kvTiles);
  const lds = r.tileCols * 4, ldo = r.valueCols * 4;
  ctx.env.b = b, ctx.env.h = h;
  const base = firstRow(layout, heads, b, h);
  for (let row = rowFrom; row < rowTo; row++) {
    const i0 = row * r.tileQ, rows = Math.min(qLen, i0 + r.tileQ) - i0;
    const gemmRows = Math.ceil(rows / GEMM_ROWS) * GEMM_ROWS;
    for (let i = 0; i < rows; i++) {
      memory[stats / 4 + 2 * i] = LOWEST_F32, memory[stats / 4 + 2 * i + 1] = 0;
    }
    memory.fill(0, acc / 4, acc / 4 + gemmRows * r.valueCols);
    const [first, last] = [layout.rowStart[base + row], layout.rowStart[base + row + 1]];
    for (let e = first; e < last; e++) {
      const col = layout.tileCol[e], partial = layout.partial[e] === 1;
      const j0 = col * r.tileKv, count = Math.min(kvLen, j0 + r.tileKv) - j0;
      const qAt = qBase + i0 * headDim * 4, ktAt = ktBase + col * headDim * lds;
      kernels.gemmScores(qAt, ktAt, scores, gemmRows, r.tileCols, headDim, plan.scale, 0);
      if (partial || ctx.scoreMod) applyExprs(ctx, scores / 4, i0, rows, j0, count, partial);
      kernels.softmax(scores, lds, rows, count, stats, acc, ldo, r.valueCols / 4);
      const vAt = vBase + j0 * ldo;
      if (partial && !tileFinite(memory, finite, col, vAt / 4, count, r.valueCols)) {
        accumulateVisible(ctx, scores / 4, acc / 4, vAt / 4, i0, rows, j0, count);
      } else kernels.gemmValues(scores, vAt, acc, gemmRows, r.valueCols, count, 1, 1);
    }
    writeRows(ctx, b, h, i0, rows, acc / 4, stats / 4);
  }
}

/** Ranges of keys at most this long are masked element by element. */
const MASK_LEAF = 8;

/**
 * Sets the scores of hidden keys in `[from, to)` of query `i` (row at `at`) to -Infinity. A
 * range the mask's interval bounds prove all visible or all hidden costs one bound; others are
 * halved, so a causal or window edge costs O(log tile) bounds, not one Expr call per key.
 */
function maskRange(
  ctx: FlashRowsContext,
  mask: { expr: Expr; compiled: CompiledExpr },
  bounds: Bounds,
  at: number,
  i: number,
  from: number,
  to: number,
): void {
  const { memory, env } = ctx;
  if (to - from > MASK_LEAF) {
    bounds.kvIdx = [from, to - 1];
    const [lo, hi] = interval(mask.expr, bounds);
    if (lo >= 1) return;
    if (hi <= 0) {
      memory.fill(-Infinity, at + from, at + to);
      return;
    }
    const mid = (from + to) >> 1;
    maskRange(ctx, mask, bounds, at, i, from, mid);
    maskRange(ctx, mask, bounds, at, i, mid, to);
    return;
  }
  env.qIdx = i;
  for (let j = from; j < to; j++) {
    env.kvIdx = j;
    if (mask.compiled(env) === 0) memory[at + j] = -Infinity;
  }
}

/** Masks hidden keys to -Infinity (partial tiles) and applies the score modifier. */
function applyExprs(
  ctx: FlashRowsContext,
  s: number,
  i0: number,
  rows: number,
  j0: number,
  count: number,
  partial: boolean,
): void {
  const { memory, env, scoreMod, plan } = ctx;
  const ld = ctx.regions.tileCols;
  const mask = partial && plan.mask && ctx.mask
    ? { expr: plan.mask, compiled: ctx.mask }
    : undefined;
  const bounds: Bounds = {
    b: [env.b ?? 0, env.b ?? 0],
    h: [env.h ?? 0, env.h ?? 0],
    qLen: [plan.sizes.qLen, plan.sizes.qLen],
    kvLen: [plan.sizes.kvLen, plan.sizes.kvLen],
  };
  for (let i = 0; i < rows; i++) {
    // Row `at` indexed by absolute key: the tile's column t is key j0 + t.
    const at = s + i * ld - j0;
    if (scoreMod) {
      env.qIdx = i0 + i;
      for (let j = j0; j < j0 + count; j++) {
        env.kvIdx = j, env.score = memory[at + j];
        memory[at + j] = scoreMod(env);
      }
    }
    if (mask) {
      bounds.qIdx = [i0 + i, i0 + i];
      const pieces = ctx.maskPieces?.(bounds, plan.sizes.kvLen);
      if (pieces) maskPieces(ctx, mask, pieces, bounds, at, i0 + i, j0, j0 + count);
      else maskRange(ctx, mask, bounds, at, i0 + i, j0, j0 + count);
    }
  }
}

/**
 * Masks keys `[from, to)` of query `i` by the mask's pieces for that one row: hidden pieces are
 * filled with -Infinity at once, visible ones left, and only pieces the closed form leaves
 * mixed are bisected.
 */
function maskPieces(
  ctx: FlashRowsContext,
  mask: { expr: Expr; compiled: CompiledExpr },
  { starts, kinds }: Pieces,
  bounds: Bounds,
  at: number,
  i: number,
  from: number,
  to: number,
): void {
  for (let k = 0; k < kinds.length; k++) {
    const lo = Math.max(from, starts[k]), hi = Math.min(to, starts[k + 1] ?? to);
    if (lo >= hi || kinds[k] === 1) continue;
    if (kinds[k] === 0) ctx.memory.fill(-Infinity, at + lo, at + hi);
    else maskRange(ctx, mask, bounds, at, i, lo, hi);
  }
}

/**
 * `O += P · V` over visible keys only, for a partial tile whose values hold NaN or Infinity:
 * a hidden key's `0 · Inf` must not reach the row.
 */
function accumulateVisible(
  ctx: FlashRowsContext,
  p: number,
  o: number,
  v: number,
  i0: number,
  rows: number,
  j0: number,
  count: number,
): void {
  const { memory, env, mask, regions } = ctx;
  const ld = regions.tileCols, dv = ctx.plan.sizes.valueDim, ldo = regions.valueCols;
  for (let i = 0; i < rows; i++) {
    for (let t = 0; t < count; t++) {
      env.qIdx = i0 + i, env.kvIdx = j0 + t;
      if (mask && mask(env) === 0) continue;
      const pt = memory[p + i * ld + t], row = v + t * ldo, out = o + i * ldo;
      for (let d = 0; d < dv; d++) memory[out + d] += pt * memory[row + d];
    }
  }
}

/** `out = O / sum` and `lse = max + log(sum)` for the rows of a finished tile. */
function writeRows(
  ctx: FlashRowsContext,
  b: number,
  h: number,
  i0: number,
  rows: number,
  o: number,
  stats: number,
): void {
  const { memory, regions, plan } = ctx;
  const { heads, qLen, valueDim } = plan.sizes;
  const head = (b * heads + h) * qLen + i0;
  const sink = plan.sinkLogits?.[h];
  for (let i = 0; i < rows; i++) {
    const { weight, lse } = finishRow(memory[stats + 2 * i], memory[stats + 2 * i + 1], sink);
    const from = o + i * regions.valueCols, to = regions.out / 4 + (head + i) * valueDim;
    for (let d = 0; d < valueDim; d++) memory[to + d] = memory[from + d] * weight;
    memory[regions.lse / 4 + head + i] = lse;
  }
}
