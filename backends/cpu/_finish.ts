/**
 * The last step of a softmax row, shared by every CPU kernel: from the row's running maximum
 * `max` and `sum = Σ exp(s_j - max)` (over visible keys), the weight that turns the accumulated
 * `Σ exp(s_j - max) · v_j` into `out`, and the row's `lse`, with the head's sink logit joining
 * the denominator when the plan has one.
 * @module
 */

/** A finished row: `out = acc · weight`. */
export interface FinishedRow {
  readonly weight: number;
  readonly lse: number;
}

/**
 * Finishes a row.
 *
 * @param max The row's running maximum (the lowest finite value or below when nothing was seen).
 * @param sum `Σ exp(s_j - max)`; 0 when the row saw no key. NaN stays NaN.
 * @param sink The head's sink logit, if any.
 */
export function finishRow(max: number, sum: number, sink: number | undefined): FinishedRow {
  if (sink === undefined) {
    return { weight: sum <= 0 ? 0 : 1 / sum, lse: sum <= 0 ? -Infinity : max + Math.log(sum) };
  }
  if (sum <= 0) return { weight: 0, lse: sink };
  const top = Math.max(max, sink);
  const kept = Math.exp(max - top);
  const total = sum * kept + Math.exp(sink - top);
  return { weight: kept / total, lse: top + Math.log(total) };
}
