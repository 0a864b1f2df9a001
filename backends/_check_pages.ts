/**
 * Checks shared by the built-in backends for the paged KV cache's inputs: a paged run's block
 * tables and lengths, and the row indices of `scatterRows` / `gatherRows`. Each throws before any
 * work, naming the field and value.
 * @module
 */
import type { KernelPlan } from "../core/lower.ts";
import { fail } from "../core/_check.ts";
import { contiguousStrides, isContiguous, type TensorDesc } from "../core/tensor_desc.ts";
import type { RunInputs } from "./backend.ts";

/** A paged run's batch, checked and copied into Int32Arrays. */
export interface CheckedPages {
  /** `[B, maxBlocks]` block ids, -1 for a released block. */
  readonly tables: Int32Array;
  /** Keys each sequence holds. */
  readonly lengths: Int32Array;
  /** Queries each sequence asks (its last tokens). */
  readonly queryLengths: Int32Array;
}

function integers(
  values: unknown,
  length: number,
  field: string,
  lo: (i: number) => number,
  hi: (i: number) => number,
): Int32Array {
  const context = "run plan";
  if (
    values === null || typeof values !== "object" ||
    typeof (values as ArrayLike<number>).length !== "number"
  ) {
    fail("type", context, field, "an Int32Array or an array of integers", values);
  }
  const list = values as ArrayLike<number>;
  if (list.length !== length) fail("range", context, `${field}.length`, `${length}`, list.length);
  const out = new Int32Array(length);
  for (let i = 0; i < length; i++) {
    const x = list[i];
    if (!Number.isInteger(x) || x < lo(i) || x > hi(i)) {
      fail("range", context, `${field}[${i}]`, `an integer in ${lo(i)}..${hi(i)}`, x);
    }
    out[i] = x;
  }
  return out;
}

/**
 * Checks `io.pages` against a plan: present exactly when the plan is paged; `tables` of
 * `B · maxBlocks` block ids in `-1 .. numBlocks - 1`; `lengths` of B key counts up to the tables'
 * capacity; `queryLengths` (default `Nq` each) of B counts up to `Nq` and the sequence's length.
 *
 * @returns The checked batch, or undefined for a plan that is not paged.
 */
export function checkPages(plan: KernelPlan, io: RunInputs): CheckedPages | undefined {
  const pages = io.pages;
  if (plan.family !== "paged") {
    if (pages !== undefined) {
      fail("type", "run plan", "pages", "absent (the plan is not paged)", pages);
    }
    return undefined;
  }
  if (pages === null || typeof pages !== "object") {
    fail("type", "run plan", "pages", "{ tables, lengths, queryLengths? } for a paged plan", pages);
  }
  const { batch, qLen } = plan.sizes;
  const { maxBlocks, blockSize } = plan.paging!;
  const numBlocks = plan.k.shape[0];
  const tables = integers(
    pages.tables,
    batch * maxBlocks,
    "pages.tables",
    () => -1,
    () => numBlocks - 1,
  );
  const lengths = integers(
    pages.lengths,
    batch,
    "pages.lengths",
    () => 0,
    () => maxBlocks * blockSize,
  );
  const queryLengths = pages.queryLengths === undefined
    ? new Int32Array(batch).map((_, s) => Math.min(qLen, lengths[s]))
    : integers(
      pages.queryLengths,
      batch,
      "pages.queryLengths",
      () => 0,
      (s) => Math.min(qLen, lengths[s]),
    );
  return { tables, lengths, queryLengths };
}

/**
 * Checks `scatterRows(target, rows, source)` or `gatherRows(source, rows)`: rank at least 1,
 * row indices that are integers inside the tensor's rows, and for a scatter a source of
 * `[rows.length, ...target.shape.slice(1)]` in the target's dtype, with no row written twice.
 */
export function checkRows(
  context: string,
  table: TensorDesc,
  rows: unknown,
  source?: TensorDesc,
): Int32Array {
  if (table.shape.length === 0) {
    fail("range", context, "tensor.shape", "of rank 1 or more", table.shape);
  }
  if (!(rows instanceof Int32Array)) fail("type", context, "rows", "an Int32Array", rows);
  const count = table.shape[0];
  rows.forEach((r, i) => {
    if (r < 0 || r >= count) fail("range", context, `rows[${i}]`, `in 0..${count - 1}`, r);
  });
  if (source !== undefined) {
    // Scatters write rows in place: the target's rows must be its storage's.
    if (!isContiguous(table)) {
      fail(
        "range",
        context,
        "target.strides",
        `contiguous [${contiguousStrides(table.shape)}]`,
        table.strides,
      );
    }
    if (source.dtype !== table.dtype) {
      fail("type", context, "source.dtype", `the target's (${table.dtype})`, source.dtype);
    }
    const want = [rows.length, ...table.shape.slice(1)];
    if (String(source.shape) !== String(want)) {
      fail("range", context, "source.shape", `[${want}]`, source.shape);
    }
    const seen = new Set<number>();
    rows.forEach((r, i) => {
      if (seen.has(r)) fail("range", context, `rows[${i}]`, "a row not written twice", r);
      seen.add(r);
    });
  }
  return rows;
}
