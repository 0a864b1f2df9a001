/**
 * Hierarchical (compressed-block) attention as plain data: the three branches of Native Sparse
 * Attention, their checks, and the counts its cost model reads. The transform that sets it on a
 * spec is `hierarchical()` in `variants/`.
 * @module
 */
import { assertDesc, type TensorDesc } from "./tensor_desc.ts";
import type { SpecSizes } from "./spec.ts";
import { assertArray, assertInteger, assertObject, fail, MAX_SIZE } from "./_check.ts";

/** Weight of each branch, one per query head. */
export interface BranchWeights {
  /** Weight of the branch over block summaries. */
  readonly compressed: readonly number[];
  /** Weight of the branch over the selected full blocks. */
  readonly selected: readonly number[];
  /** Weight of the local window. */
  readonly window: readonly number[];
}

/**
 * The branches of hierarchical attention. Query `i` sits at `p = Nk - Nq + i`; summary `s`
 * covers keys `s·stride .. s·stride + block - 1`, and its key and value are their means.
 */
export interface Hierarchy {
  /** Keys at full resolution, the query's own included: `p - window < j <= p`. */
  readonly window: number;
  /** Keys per summary. */
  readonly block: number;
  /** Keys between consecutive summaries' starts (at most `block`). */
  readonly stride: number;
  /** Summaries whose full keys the selected branch reads (0: that branch is empty). */
  readonly topK: number;
  /** Fixed weights per branch and head, when `gates` is absent. */
  readonly weights?: BranchWeights;
  /** Gates per query `[B, Hq, Nq, 3]` (compressed, selected, window), given at run time. */
  readonly gates?: TensorDesc;
}

/** The most summaries the selected branch may read per query (kernels keep them in registers). */
export const MAX_TOP_K = 64;

/** The most keys per summary. */
export const MAX_BLOCK = 2 ** 16;

/** Branch names, in the order of the gates' last dimension. */
export const BRANCHES: readonly (keyof BranchWeights)[] = Object.freeze([
  "compressed",
  "selected",
  "window",
]);

/**
 * Number of summaries over `kvLen` keys: whole blocks only.
 *
 * @param kvLen Keys.
 * @param block Keys per summary.
 * @param stride Keys between summaries' starts.
 * @returns The count.
 * @example
 * ```ts
 * import { summaryCount } from "@attend/attend/core";
 * if (summaryCount(10, 4, 2) !== 4) throw new Error("starts 0, 2, 4, 6");
 * ```
 */
export function summaryCount(kvLen: number, block: number, stride: number): number {
  return kvLen < block ? 0 : Math.floor((kvLen - block) / stride) + 1;
}

/**
 * Summaries a query at position `p` sees: those whose whole block is at or before `p`.
 *
 * @param p The query's position among the keys.
 * @param block Keys per summary.
 * @param stride Keys between summaries' starts.
 * @param count Summaries there are.
 * @returns The count, a prefix of the summaries.
 * @example
 * ```ts
 * import { visibleSummaries } from "@attend/attend/core";
 * if (visibleSummaries(5, 4, 2, 100) !== 2) throw new Error("blocks 0..3 and 2..5");
 * ```
 */
export function visibleSummaries(
  p: number,
  block: number,
  stride: number,
  count: number,
): number {
  return Math.min(count, summaryCount(p + 1, block, stride));
}

/**
 * Checks a hierarchy as `hierarchical()` builds it; with `sizes`, also that the weights hold one
 * value per query head and the gates' descriptor is `[B, Hq, Nq, 3]` of the queries' dtype.
 *
 * @param value The value.
 * @param context What was being done, for the message.
 * @param sizes The spec's sizes and dtype, when known.
 * @throws {TypeError} / {RangeError} Naming the field and value.
 * @example
 * ```ts
 * import { assertHierarchy } from "@attend/attend/core";
 * import { assertThrows } from "@std/assert";
 * assertThrows(
 *   () => assertHierarchy({ window: 4, block: 4, stride: 8, topK: 1 }, "check"),
 *   RangeError,
 *   "hierarchy.stride must be an integer in 1..4",
 * );
 * ```
 */
export function assertHierarchy(
  value: unknown,
  context: string,
  sizes?: SpecSizes & { readonly dtype: string },
): asserts value is Hierarchy {
  assertObject(value, context, "hierarchy", "an object from hierarchical()");
  assertInteger(value.window, context, "hierarchy.window", 1, MAX_SIZE);
  assertInteger(value.block, context, "hierarchy.block", 1, MAX_BLOCK);
  assertInteger(value.stride, context, "hierarchy.stride", 1, value.block);
  assertInteger(value.topK, context, "hierarchy.topK", 0, MAX_TOP_K);
  if ((value.weights === undefined) === (value.gates === undefined)) {
    fail("type", context, "hierarchy", "given exactly one of weights and gates", value);
  }
  if (value.weights !== undefined) {
    assertObject(value.weights, context, "hierarchy.weights", "an object of per-head arrays");
    for (const branch of BRANCHES) {
      const field = `hierarchy.weights.${branch}`;
      const values = value.weights[branch];
      assertArray(values, context, field, "an array of numbers");
      values.forEach((w, i) => {
        if (typeof w !== "number") fail("type", context, `${field}[${i}]`, "a number", w);
        if (!Number.isFinite(w)) fail("range", context, `${field}[${i}]`, "finite", w);
      });
      if (sizes && values.length !== sizes.heads) {
        fail("range", context, `${field}.length`, `q heads (${sizes.heads})`, values.length);
      }
    }
  }
  if (value.gates !== undefined) {
    assertDesc(value.gates, context, "hierarchy.gates");
    const gates = value.gates as TensorDesc;
    if (sizes) {
      const want = [sizes.batch, sizes.heads, sizes.qLen, 3];
      if (String(gates.shape) !== String(want)) {
        fail("range", context, "hierarchy.gates.shape", `[${want}] ([B, Hq, Nq, 3])`, gates.shape);
      }
      if (gates.dtype !== sizes.dtype) {
        fail("type", context, "hierarchy.gates.dtype", `q's dtype ${sizes.dtype}`, gates.dtype);
      }
    }
  }
}

/** Entries one query head computes in each branch, summed over its rows. */
export interface HierarchyCounts {
  /** Summaries the compressed branch scores (the selection reads the same scores). */
  readonly summaries: number;
  /** Full keys the selected branch reads, at most (fewer where selected blocks overlap). */
  readonly selectedKeys: number;
  /** Keys of the local window. */
  readonly windowKeys: number;
}

/**
 * What one query head computes, summed over its `Nq` rows: the cost model of `explain()`.
 *
 * @param hierarchy Branch sizes.
 * @param qLen Query rows.
 * @param kvLen Keys.
 * @returns The counts.
 * @example
 * ```ts
 * import { hierarchyCounts } from "@attend/attend/core";
 * const n = hierarchyCounts({ window: 2, block: 2, stride: 2, topK: 1 }, 4, 4);
 * if (n.windowKeys !== 1 + 2 + 2 + 2 || n.summaries !== 0 + 1 + 1 + 2) throw new Error();
 * ```
 */
export function hierarchyCounts(
  hierarchy: Pick<Hierarchy, "window" | "block" | "stride" | "topK">,
  qLen: number,
  kvLen: number,
): HierarchyCounts {
  const { window, block, stride, topK } = hierarchy;
  const count = summaryCount(kvLen, block, stride);
  let summaries = 0, selectedKeys = 0, windowKeys = 0;
  for (let p = kvLen - qLen; p < kvLen; p++) {
    if (p < 0) continue;
    const seen = visibleSummaries(p, block, stride, count);
    summaries += seen;
    selectedKeys += Math.min(Math.min(seen, topK) * block, p + 1);
    windowKeys += Math.min(window, p + 1);
  }
  return { summaries, selectedKeys, windowKeys };
}
