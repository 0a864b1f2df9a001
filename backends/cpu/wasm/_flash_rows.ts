/**
 * The flash loop over packed inputs, one query-tile row at a time: `S = Q · Kᵀ · scale` (gemm),
 * the mask and score modifier on partial tiles only (TypeScript, through compiled Exprs), the
 * online softmax (SIMD), `O += P · V` (gemm), then `out = O / sum` and `lse`. A row's result
 * depends only on its own tiles, so any split of rows across threads gives the same bits.
 * @module
 */
import { BlockKind } from "../../../core/classify_blocks.ts";
import type { CompiledExpr, ExprEnv } from "../../../core/evaluate.ts";
import type { BlockLayout } from "../../../core/classify_blocks.ts";
import type { KernelPlan } from "../../../core/lower.ts";
import type { FlashRegions } from "./_flash_regions.ts";
import type { MicroKernels } from "./_micro_kernels.ts";
import { GEMM_ROWS } from "./_gemm.ts";

/** Everything a thread needs to run rows of a packed flash run. */
export interface FlashRowsContext {
  readonly kernels: MicroKernels;
  /** A view of the whole WebAssembly memory. */
  readonly memory: Float32Array;
  readonly plan: KernelPlan;
  /** The plan's block layout (tile rows, columns and kinds). */
  readonly layout: Pick<BlockLayout, "rows" | "cols" | "kinds">;
  readonly regions: FlashRegions;
  readonly mask?: CompiledExpr;
  readonly scoreMod?: CompiledExpr;
  readonly env: ExprEnv;
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
  for (let row = rowFrom; row < rowTo; row++) {
    const i0 = row * r.tileQ, rows = Math.min(qLen, i0 + r.tileQ) - i0;
    const gemmRows = Math.ceil(rows / GEMM_ROWS) * GEMM_ROWS;
    for (let i = 0; i < rows; i++) {
      memory[stats / 4 + 2 * i] = LOWEST_F32, memory[stats / 4 + 2 * i + 1] = 0;
    }
    memory.fill(0, acc / 4, acc / 4 + gemmRows * r.valueCols);
    for (let col = 0; col < layout.cols; col++) {
      const kind = layout.kinds[row * layout.cols + col];
      if (kind === BlockKind.empty) continue;
      const partial = kind === BlockKind.partial;
      const j0 = col * r.tileKv, count = Math.min(kvLen, j0 + r.tileKv) - j0;
      const qAt = qBase + i0 * headDim * 4, ktAt = ktBase + col * headDim * lds;
      kernels.gemmScores(qAt, ktAt, scores, gemmRows, r.tileCols, headDim, plan.scale, 0);
      if (partial || ctx.scoreMod) applyExprs(ctx, scores / 4, i0, rows, j0, count, partial);
      kernels.softmax(scores, lds, rows, count, stats, acc, ldo, r.valueCols / 4);
      const vAt = vBase + j0 * ldo;
      if (partial && !finite[col]) {
        accumulateVisible(ctx, scores / 4, acc / 4, vAt / 4, i0, rows, j0, count);
      } else kernels.gemmValues(scores, vAt, acc, gemmRows, r.valueCols, count, 1, 1);
    }
    writeRows(ctx, b, h, i0, rows, acc / 4, stats / 4);
  }
}

/** Masks hidden keys to -Infinity and applies the score modifier, on one score tile. */
function applyExprs(
  ctx: FlashRowsContext,
  s: number,
  i0: number,
  rows: number,
  j0: number,
  count: number,
  partial: boolean,
): void {
  const { memory, env, mask, scoreMod } = ctx;
  const ld = ctx.regions.tileCols;
  for (let i = 0; i < rows; i++) {
    const at = s + i * ld;
    for (let t = 0; t < count; t++) {
      env.qIdx = i0 + i, env.kvIdx = j0 + t;
      if (partial && mask && mask(env) === 0) {
        memory[at + t] = -Infinity;
      } else if (scoreMod) {
        env.score = memory[at + t];
        memory[at + t] = scoreMod(env);
      }
    }
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
  for (let i = 0; i < rows; i++) {
    const max = memory[stats + 2 * i], sum = memory[stats + 2 * i + 1];
    const inv = sum <= 0 ? 0 : 1 / sum; // NaN stays NaN
    const from = o + i * regions.valueCols, to = regions.out / 4 + (head + i) * valueDim;
    for (let d = 0; d < valueDim; d++) memory[to + d] = memory[from + d] * inv;
    memory[regions.lse / 4 + head + i] = sum <= 0 ? -Infinity : max + Math.log(sum);
  }
}
