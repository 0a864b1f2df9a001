/**
 * Low-rank (Linformer) attention as plain data: the key and value projections along the sequence
 * axis and their checks. The transform that sets them on a spec is `lowRank()` in `variants/`.
 * @module
 */
import { assertDesc, type TensorDesc } from "./tensor_desc.ts";
import type { SpecSizes } from "./spec.ts";
import { assertObject, fail } from "./_check.ts";

/**
 * Linformer's projections: `E` maps the `Nk` keys to `k` rows, `F` the `Nk` values, before softmax
 * attention. Each is `[k, Nk]`, shared by every KV head (Linformer's default, "headwise
 * sharing"), or `[Hkv, k, Nk]`, one per KV head. Descriptors here; the tensors are run inputs
 * (`run(plan, { q, k, v, e, f })`).
 */
export interface LowRank {
  /** Key projection, `[k, Nk]` or `[Hkv, k, Nk]`. */
  readonly e: TensorDesc;
  /** Value projection, `[k, Nk]` or `[Hkv, k, Nk]`, with the same `k` as `e`. */
  readonly f: TensorDesc;
}

/** A low-rank plan's record: the projections and the key and value inputs they project. */
export interface LowRankPlan extends LowRank {
  /** The keys a run takes, `[B, Hkv, Nk, D]` (the plan's `k` is their projection). */
  readonly k: TensorDesc;
  /** The values a run takes, `[B, Hkv, Nk, Dv]` (the plan's `v` is their projection). */
  readonly v: TensorDesc;
}

/**
 * The rows keys and values are projected to: `k` of `E`'s `[k, Nk]` or `[Hkv, k, Nk]`.
 *
 * @param lowRank The projections.
 * @returns `k`.
 * @example
 * ```ts
 * import { lowRankRows, tensorDesc } from "@attend/attend/core";
 * const e = tensorDesc([2, 16, 256]);
 * if (lowRankRows({ e, f: e }) !== 16) throw new Error("k is 16");
 * ```
 */
export function lowRankRows(lowRank: LowRank): number {
  return lowRank.e.shape[lowRank.e.shape.length - 2];
}

function assertProjection(
  d: TensorDesc,
  context: string,
  field: string,
  sizes: SpecSizes & { readonly dtype: string },
): void {
  const rank = d.shape.length;
  if (rank !== 2 && rank !== 3) {
    fail("range", context, `${field}.shape`, "[k, Nk] or [Hkv, k, Nk]", d.shape);
  }
  if (rank === 3 && d.shape[0] !== sizes.kvHeads) {
    fail("range", context, `${field}.shape[0]`, `KV heads (${sizes.kvHeads})`, d.shape[0]);
  }
  const rows = d.shape[rank - 2], keys = d.shape[rank - 1];
  if (keys !== sizes.kvLen) {
    fail("range", context, `${field}.shape[${rank - 1}]`, `k length (${sizes.kvLen})`, keys);
  }
  if (rows < 1 || rows >= sizes.kvLen) {
    fail(
      "range",
      context,
      `${field}.shape[${rank - 2}] (projected rows)`,
      `in 1..${sizes.kvLen - 1} (fewer than the ${sizes.kvLen} keys)`,
      rows,
    );
  }
  if (d.dtype !== sizes.dtype) {
    fail("type", context, `${field}.dtype`, `q's dtype ${sizes.dtype}`, d.dtype);
  }
}

/**
 * Checks projections as `lowRank()` takes them; with `sizes`, also their shapes (`[k, Nk]` or
 * `[Hkv, k, Nk]`, `1 <= k < Nk`, the same `k` for both) and dtype (q's).
 *
 * @param value The value.
 * @param context What was being done, for the message.
 * @param sizes The spec's sizes and dtype, when known.
 * @throws {TypeError} For a non-object, a non-descriptor or a dtype other than q's.
 * @throws {RangeError} For a shape that does not fit, naming the field and value.
 * @example
 * ```ts
 * import { assertLowRank, attention, specSizes, tensorDesc } from "@attend/attend/core";
 * import { assertThrows } from "@std/assert";
 * const x = tensorDesc([1, 2, 64, 8]);
 * const sizes = { ...specSizes(attention(x, x, x)), dtype: "f32" };
 * const e = tensorDesc([64, 64]);
 * assertThrows(
 *   () => assertLowRank({ e, f: e }, "check", sizes),
 *   RangeError,
 *   "lowRank.e.shape[0] (projected rows) must be in 1..63",
 * );
 * ```
 */
export function assertLowRank(
  value: unknown,
  context: string,
  sizes?: SpecSizes & { readonly dtype: string },
): asserts value is LowRank {
  assertObject(value, context, "lowRank", "an object { e, f } from lowRank()");
  assertDesc(value.e, context, "lowRank.e");
  assertDesc(value.f, context, "lowRank.f");
  if (!sizes) return;
  const { e, f } = value as unknown as LowRank;
  assertProjection(e, context, "lowRank.e", sizes);
  assertProjection(f, context, "lowRank.f", sizes);
  const rows = lowRankRows({ e, f }), fRows = f.shape[f.shape.length - 2];
  if (fRows !== rows) {
    fail("range", context, `lowRank.f.shape[${f.shape.length - 2}]`, `e's rows (${rows})`, fRows);
  }
}
