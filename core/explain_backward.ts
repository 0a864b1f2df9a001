/**
 * `explainBackward()`: the cost of a plan's backward pass (`vjp()`), for people and benchmarks.
 * @module
 */
import type { KernelPlan } from "./lower.ts";
import { explain, type PlanReport } from "./explain.ts";
import { formatBytes, summaryLines } from "./_explain_format.ts";
import { featureCount, linearCounts, type LinearNormalizer } from "./linear.ts";
import { isCausal } from "./_linear_lower.ts";
import { UnsupportedSpecError } from "./errors.ts";

/**
 * Reports the FLOPs, bytes moved and scratch memory of a plan's backward pass, as `explain()`
 * does for its forward pass.
 * - Softmax plans (`flash`, `materialized`), by recomputation: per visited (query, key) pair the
 *   five products of FlashAttention-2 (`S = q·kᵀ`, `dP = dO·vᵀ`, `dV += Pᵀ·dO`, `dQ += dS·k`,
 *   `dK += dSᵀ·q`): `2·(3D + 2Dv)` FLOPs, 2.5× the forward's at `D = Dv`, the convention
 *   benchmarks report. Key and value tiles are read once per visited tile (the query-tile pass)
 *   and query and `dO` tiles likewise (the key-tile pass). Scratch, O(N·d): `dO` as f32 rows,
 *   `(lse, D)` per row, f32 gradient accumulators, and a column view of the block layout.
 * - Linear plans: the chunked recurrences run forward (the key-side state, recomputing each row's
 *   output and denominator) and in reverse (the query-side state, per query head), and the
 *   feature map's pullback. Scratch: both states per chunk, each row's adjoint and `dφ` rows.
 *
 * @param plan A softmax or linear plan from `lower()` or `backend.plan()`.
 * @returns The report; `density` and `layoutBytes` are the forward's.
 * @throws {UnsupportedSpecError} For plans `vjp()` cannot differentiate (hierarchical, paged,
 * low-rank), naming the family or field.
 * @throws {TypeError} / {RangeError} If `plan` is not what `lower()` makes of its spec.
 * @example
 * ```ts
 * import { attention, explain, explainBackward, lower, tensorDesc } from "@attend/attend/core";
 * import { cpuCaps } from "@attend/attend/cpu";
 * const x = tensorDesc([1, 8, 1024, 64]);
 * const plan = lower(attention(x, x, x), cpuCaps);
 * // At D = Dv the backward pass is 2.5 times the forward's FLOPs.
 * if (explainBackward(plan).flops !== 2.5 * explain(plan).flops) throw new Error("2.5x");
 * ```
 */
export function explainBackward(plan: KernelPlan): PlanReport {
  const forward = explain(plan);
  if (plan.family === "linear") return linearBackward(plan, forward);
  if (plan.family !== "flash" && plan.family !== "materialized") {
    throw new UnsupportedSpecError(plan.backend, "backward of family", plan.family);
  }
  if (plan.lowRank) throw new UnsupportedSpecError(plan.backend, "backward of lowRank", "set");
  const { batch, heads, kvHeads, qLen, kvLen, headDim: D, valueDim: Dv } = plan.sizes;
  const bytes = plan.dtype === "f16" ? 2 : 4;
  const flops = forward.flops * (3 * D + 2 * Dv) / (D + Dv || 1);
  const queryRows = batch * heads * qLen;
  // Inputs and saved state once, gradients written once, and the tile re-reads of both passes:
  // the forward's key and value reads, and as many again for the query and dO tiles.
  const kvReads = forward.bytesMoved - bytes * queryRows * (D + Dv) - 4 * queryRows;
  const gradients = queryRows * D + batch * kvHeads * kvLen * (D + Dv);
  const bytesMoved = bytes * queryRows * (D + 2 * Dv) + 4 * queryRows + bytes * gradients +
    2 * Math.max(0, kvReads);
  const scratchBytes = 4 * queryRows * (Dv + 2) + 4 * gradients + forward.layoutBytes;
  const density = `density  ${(forward.density * 100).toFixed(1)}% of tiles visited`;
  return backwardReport(plan, forward, { flops, bytesMoved, scratchBytes }, density);
}

/** The forward's report with the backward pass's cost and summary. */
function backwardReport(
  plan: KernelPlan,
  forward: PlanReport,
  cost: Pick<PlanReport, "flops" | "bytesMoved" | "scratchBytes">,
  lastLine: string,
): PlanReport {
  const { flops, bytesMoved, scratchBytes } = cost;
  const lines = summaryLines(plan, forward.tile, flops, bytesMoved, scratchBytes, " backward");
  return Object.freeze({
    ...forward,
    ...cost,
    kernel: `${forward.kernel} backward`,
    summary: [...lines, lastLine].join("\n"),
  });
}

/** Linear attention's backward cost (see `explainBackward()`). */
function linearBackward(plan: KernelPlan, forward: PlanReport): PlanReport {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  const n = plan.normalizer as LinearNormalizer;
  const F = featureCount(n.featureMap, headDim), W = valueDim + 1;
  const chunk = plan.tile.kv;
  const pairs = linearCounts(qLen, kvLen, F, chunk, isCausal(plan.mask)).intraPairs;
  // φ and its pullback per row (Performer: two D-long products per feature).
  const perRow = F * (n.featureMap.kind === "performer" ? 4 * headDim + 4 : 2);
  // Per query head: its rows' outputs, dφ(q) and the fold of its adjoints (F·W each), every
  // key's dφ(k) and dv from its state, and four products per pair scored inside chunks.
  const perQueryHead = qLen * perRow + 6 * qLen * F * W + 4 * kvLen * F * W +
    8 * pairs * (F + W);
  // Per KV head: key features and their pullback, and the key-side state.
  const perKvHead = kvLen * perRow + 2 * kvLen * F * W;
  const flops = batch * (heads * perQueryHead + kvHeads * perKvHead);
  const bytes = plan.dtype === "f16" ? 2 : 4;
  const chunks = Math.ceil(kvLen / Math.max(1, chunk));
  const states = 4 * batch * (heads + kvHeads) * chunks * F * W;
  const rows = 4 * batch * heads * qLen * (W + F + chunk) + 4 * batch * kvHeads * kvLen * F;
  const gradients = batch * heads * qLen * headDim + batch * kvHeads * kvLen * (headDim + valueDim);
  const bytesMoved = 2 * forward.bytesMoved + bytes * (batch * heads * qLen * valueDim + gradients);
  const scratchBytes = states + rows;
  const line = `states   ${formatBytes(states)} (key side and query side, per chunk)`;
  return backwardReport(plan, forward, { flops, bytesMoved, scratchBytes }, line);
}
