/**
 * A flash run split into tasks of a few query-tile rows of one head, claimed one at a time from
 * a shared counter (`Atomics.add`), so threads balance uneven rows (causal rows differ in cost)
 * without a scheduler. Which thread runs a task never changes its result.
 * @module
 */
import { type FlashRowsContext, runFlashRows } from "./_flash_rows.ts";

/** Query-tile rows per task: small enough to balance, large enough to amortize a claim. */
const ROWS_PER_TASK = 2;

/** Tasks of a run with `rows` query-tile rows per head. */
function taskCount(ctx: Pick<FlashRowsContext, "plan" | "layout">): number {
  const { batch, heads } = ctx.plan.sizes;
  return batch * heads * Math.ceil(ctx.layout.rows / ROWS_PER_TASK);
}

/**
 * Claims and runs tasks until none is left.
 *
 * @param counter The run's task counter (an i32 in shared or private memory), starting at 0.
 * @param thread This thread's scratch block.
 */
export function runTasks(ctx: FlashRowsContext, counter: Int32Array, thread: number): void {
  const { heads } = ctx.plan.sizes;
  const perHead = Math.ceil(ctx.layout.rows / ROWS_PER_TASK);
  const total = taskCount(ctx);
  for (let task = Atomics.add(counter, 0, 1); task < total; task = Atomics.add(counter, 0, 1)) {
    const head = Math.floor(task / perHead), part = task % perHead;
    const rowFrom = part * ROWS_PER_TASK;
    const rowTo = Math.min(ctx.layout.rows, rowFrom + ROWS_PER_TASK);
    runFlashRows(ctx, Math.floor(head / heads), head % heads, rowFrom, rowTo, thread);
  }
}
