/**
 * `explain()`: the cost of a plan, for people and for benchmarks.
 * @module
 */
import type { KernelPlan } from "./lower.ts";
import { planLayout } from "./plan_layout.ts";
import { tileListsBytes } from "./tile_lists.ts";
import { hierarchyCounts, summaryCount } from "./hierarchy.ts";
import { featureCount, linearCounts } from "./linear.ts";
import { isCausal, stateSharers } from "./_linear_lower.ts";
import { formatBytes, kernelName, summaryLines } from "./_explain_format.ts";
import { assertObject } from "./_check.ts";

/** What a plan costs. */
export interface PlanReport {
  /** Kernel family and backend. */
  readonly kernel: string;
  /** Tile shape, `q×kv` (hierarchical: summary `block/stride`; linear: keys per chunk). */
  readonly tile: string;
  /** Floating-point operations of the score and output products over visited tiles. */
  readonly flops: number;
  /** Bytes read and written in device memory, estimated. */
  readonly bytesMoved: number;
  /** Bytes of temporary buffers beyond inputs and outputs. */
  readonly scratchBytes: number;
  /** Fraction of tiles that are not empty. */
  readonly density: number;
  /** Bytes of the block layout (linear in the tiles it lists). */
  readonly layoutBytes: number;
  /** The above on a few lines. */
  readonly summary: string;
}

/**
 * Reports FLOPs, bytes moved, scratch memory and tile density of a plan.
 *
 * @param plan A plan from `lower()` or `backend.plan()`.
 * @returns The report.
 * @throws {TypeError} / {RangeError} If `plan` is not what `lower()` makes of its spec.
 * @example
 * ```ts
 * import { attention, causal, explain, lower, mask, tensorDesc } from "@attend/attend/core";
 * import { cpuCaps } from "@attend/attend/cpu";
 * const x = tensorDesc([1, 1, 2048, 64]);
 * const report = explain(lower(mask(causal())(attention(x, x, x)), cpuCaps));
 * // Causal visits about half the tiles (the diagonal ones partially).
 * if (report.density >= 0.6) throw new Error(`density ${report.density}`);
 * ```
 */
export function explain(plan: KernelPlan): PlanReport {
  const want = "a KernelPlan from lower()";
  assertObject(plan, "explain plan", "plan", want);
  assertObject(plan.sizes, "explain plan", "plan.sizes", want);
  if (plan.family === "hierarchical") return explainHierarchy(plan);
  if (plan.family === "linear") return explainLinear(plan);
  if (plan.family === "paged") return explainPaged(plan);
  const { batch, heads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  const layout = planLayout(plan);
  const bytes = plan.dtype === "f16" ? 2 : 4;
  const rowElems = headDim + valueDim;
  // Per distinct layout: entries computed (rows of all `pack` heads times keys), key rows read
  // and tiles listed; then summed over the units that read it.
  const packedRows = qLen * layout.pack;
  const perLayout = new Map<number, { visited: number; keys: number; tiles: number }>();
  let visited = 0, kvRowsRead = 0, listed = 0;
  for (const base of layout.unitRow) {
    let cost = perLayout.get(base);
    if (!cost) {
      cost = { visited: 0, keys: 0, tiles: 0 };
      for (let row = 0; row < layout.rows; row++) {
        const rowsInTile = Math.min(packedRows, (row + 1) * layout.tileQ) - row * layout.tileQ;
        const [first, last] = [layout.rowStart[base + row], layout.rowStart[base + row + 1]];
        for (let e = first; e < last; e++) {
          const col = layout.tileCol[e];
          const keys = Math.min(kvLen, (col + 1) * layout.tileKv) - col * layout.tileKv;
          cost.visited += rowsInTile * keys;
          cost.keys += keys;
        }
        cost.tiles += last - first;
      }
      perLayout.set(base, cost);
    }
    visited += cost.visited, kvRowsRead += cost.keys, listed += cost.tiles;
  }
  const materialized = plan.family === "materialized";
  const scored = materialized ? batch * heads * qLen * kvLen : visited;
  const flops = 2 * scored * rowElems;
  const io = bytes * batch * heads * (qLen * headDim + qLen * valueDim) +
    (plan.outputs.lse ? 4 * batch * heads * qLen : 0);
  const kvReads = materialized
    ? bytes * batch * heads * kvLen * rowElems
    : bytes * kvRowsRead * rowElems;
  const scores = materialized ? 4 * batch * heads * qLen * kvLen : 0;
  const bytesMoved = io + kvReads + 2 * scores;
  // Split plans keep each split's state (out and lse) of every row until the merge.
  const splitStates = plan.splits > 1 ? 4 * plan.splits * batch * heads * qLen * (valueDim + 1) : 0;
  const scratchBytes = materialized
    ? (plan.materializedScratch === "per-head" ? 4 * qLen * kvLen : scores)
    : 4 * (layout.tileQ * layout.tileKv + (layout.tileQ + layout.tileKv) * rowElems) + splitStates;
  const layoutBytes = tileListsBytes(layout);
  const tiles = layout.rows * layout.cols;
  const d = tiles === 0 || layout.unitRow.length === 0
    ? 1
    : listed / (tiles * layout.unitRow.length);
  const tile = `${layout.tileQ}x${layout.tileKv}`;
  const density = `${(d * 100).toFixed(1)}% of ${tiles} tiles, layout ${formatBytes(layoutBytes)}`;
  return report(plan, { tile, flops, bytesMoved, scratchBytes, density: d, layoutBytes }, density);
}

/**
 * A low-rank plan's projection, added to its attention's cost: `2·Nk·k` multiply-adds per batch,
 * KV head and key or value column; the inputs' keys and values and the projections read, the
 * projected rows written (and kept as scratch until the attention has read them).
 */
function withProjection(
  plan: KernelPlan,
  cost: Omit<PlanReport, "kernel" | "summary">,
): { cost: Omit<PlanReport, "kernel" | "summary">; line: string } {
  const lr = plan.lowRank!;
  const { batch, kvHeads, kvLen: rows, headDim, valueDim } = plan.sizes;
  const keys = lr.k.shape[2];
  const bytes = plan.dtype === "f16" ? 2 : 4;
  const projected = batch * kvHeads * rows * (headDim + valueDim);
  const flops = 2 * projected * keys;
  const projections = (lr.e.shape.length === 3 ? kvHeads : 1) +
    (lr.f.shape.length === 3 ? kvHeads : 1);
  const bytesMoved = bytes *
    (batch * kvHeads * keys * (headDim + valueDim) + projections * rows * keys + projected);
  const line = `low-rank ${keys} keys projected to ${rows} rows: ${
    (flops / 1e9).toFixed(3)
  } GFLOP, ${formatBytes(bytes * projected)} of projected rows`;
  return {
    cost: {
      ...cost,
      flops: cost.flops + flops,
      bytesMoved: cost.bytesMoved + bytesMoved,
      scratchBytes: cost.scratchBytes + bytes * projected,
    },
    line,
  };
}

function report(
  plan: KernelPlan,
  attention: Omit<PlanReport, "kernel" | "summary">,
  density: string,
): PlanReport {
  const projection = plan.lowRank ? withProjection(plan, attention) : undefined;
  const cost = projection?.cost ?? attention;
  const summary = [
    ...summaryLines(plan, cost.tile, cost.flops, cost.bytesMoved, cost.scratchBytes),
    `density  ${density}`,
    ...(projection ? [projection.line] : []),
  ].join("\n");
  return Object.freeze({ kernel: kernelName(plan), ...cost, summary });
}

/**
 * Hierarchical attention's cost: per query, the summaries it scores (their values too), the full
 * keys of the selected blocks (at most) and of its window, plus pooling the summaries once.
 * Density is the share of the Nq×Nk entries the full-resolution branches read.
 */
function explainHierarchy(plan: KernelPlan): PlanReport {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  const hierarchy = plan.hierarchy!;
  const n = hierarchyCounts(hierarchy, qLen, kvLen);
  const bytes = plan.dtype === "f16" ? 2 : 4;
  const rowElems = headDim + valueDim;
  const summaries = summaryCount(kvLen, hierarchy.block, hierarchy.stride);
  const pooled = batch * kvHeads * summaries * rowElems;
  const perHead = n.summaries + n.selectedKeys + n.windowKeys;
  const flops = 2 * batch * heads * perHead * rowElems + pooled * hierarchy.block;
  const io = bytes * batch * heads * qLen * (headDim + valueDim + (plan.hierarchy?.gates ? 3 : 0));
  const bytesMoved = io + bytes * batch * kvHeads * kvLen * rowElems +
    4 * pooled * (1 + heads / kvHeads);
  const full = qLen * kvLen;
  const density = full === 0 ? 1 : (n.selectedKeys + n.windowKeys) / full;
  const shown = `${
    (density * 100).toFixed(1)
  }% of Nq×Nk at full resolution, ${summaries} summaries`;
  return report(plan, {
    tile: `${hierarchy.block}/${hierarchy.stride}`,
    flops,
    bytesMoved,
    scratchBytes: 4 * pooled,
    density,
    layoutBytes: 0,
  }, shown);
}

/**
 * Linear attention's cost: the features of every query row and (once per KV head) key row
 * (Performer: a `D`-long product each), the state products (`F·Dv` per query read out and per key
 * folded in, the latter once per state head, `F` more for `z`), and for causal plans the pairs
 * scored inside chunks (`F + Dv` each). Nothing grows with `Nq·Nk`: the
 * scratch is one head's state, a chunk's scores and its rows' features. Density is the share of
 * `Nq×Nk` pairs that reach the output.
 */
function explainLinear(plan: KernelPlan): PlanReport {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  const n = plan.normalizer as Exclude<KernelPlan["normalizer"], "softmax">;
  const features = featureCount(n.featureMap, headDim);
  const chunk = plan.tile.kv;
  const causal = isCausal(plan.mask);
  const c = linearCounts(qLen, kvLen, features, chunk, causal);
  const perFeature = n.featureMap.kind === "performer" ? 2 * headDim + 2 : 1;
  const width = valueDim + 1;
  // Query rows per query head; key features per KV head; keys folded per state head (GQA: per
  // KV head, unless decays differ within a group).
  const perQueryHead = qLen * features * (perFeature + 2 * width) +
    2 * c.intraPairs * (features + valueDim);
  const stateHeads = heads / Math.max(1, stateSharers(n, heads, kvHeads));
  const flops = batch * (heads * perQueryHead + kvHeads * kvLen * features * perFeature +
    stateHeads * 2 * kvLen * features * width);
  const bytes = plan.dtype === "f16" ? 2 : 4;
  const state = 4 * batch * heads * features * (valueDim + 1);
  const io = bytes * batch * heads * qLen * (headDim + valueDim);
  const bytesMoved = io + bytes * batch * kvHeads * kvLen * (headDim + valueDim) +
    2 * state;
  const scratchBytes = 8 * (features * (valueDim + 1) + chunk * chunk + 2 * chunk * features);
  let visible = qLen * kvLen;
  if (causal) {
    visible = 0;
    for (let i = 0; i < qLen; i++) visible += Math.max(0, Math.min(kvLen, kvLen - qLen + i + 1));
  }
  const density = qLen * kvLen === 0 ? 1 : visible / (qLen * kvLen);
  const shown = `${
    (density * 100).toFixed(1)
  }% of Nq×Nk pairs reach the output; ${features} ${n.featureMap.kind} features, ${
    causal ? `causal, ${chunk}-key chunks` : "non-causal, two passes"
  }${n.decay ? ", decay" : ""}${n.normalize ? "" : ", unnormalized"}, state ${formatBytes(state)}`;
  return report(plan, {
    tile: `chunk ${chunk}`,
    flops,
    bytesMoved,
    scratchBytes,
    density,
    layoutBytes: 0,
  }, shown);
}

/**
 * Paged attention's cost with every sequence at the tables' capacity (the lengths come with each
 * run): every key of a sequence scored once per query row, each KV head's keys read once per
 * workgroup of packed rows, the block tables read, the split states kept until their merge.
 */
function explainPaged(plan: KernelPlan): PlanReport {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  const bytes = plan.dtype === "f16" ? 2 : 4;
  const rowElems = headDim + valueDim;
  const rowTiles = Math.ceil((qLen * plan.pack) / plan.tile.q);
  const readers = (heads / Math.max(1, kvHeads)) / plan.pack * rowTiles;
  const kvReads = bytes * batch * kvHeads * kvLen * rowElems * readers;
  const tables = 4 * batch * (plan.paging!.maxBlocks + 2);
  const io = bytes * batch * heads * qLen * rowElems +
    (plan.outputs.lse ? 4 * batch * heads * qLen : 0);
  const scratchBytes = plan.splits > 1
    ? 4 * plan.splits * batch * heads * qLen * (valueDim + 1)
    : 0;
  const density = `tables of ${plan.paging!.maxBlocks} blocks of ${
    plan.paging!.blockSize
  } slots, at capacity`;
  return report(plan, {
    tile: `${plan.tile.q}x${plan.tile.kv}`,
    flops: 2 * batch * heads * qLen * kvLen * rowElems,
    bytesMoved: io + kvReads + tables,
    scratchBytes,
    density: 1,
    layoutBytes: tables,
  }, density);
}
