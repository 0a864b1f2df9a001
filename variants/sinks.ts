/**
 * Attention sinks (StreamingLLM).
 * @module
 */
import { and, type Expr, kvIdx, le, lt, qPos } from "../core/expr.ts";
import { perHead } from "./_args.ts";

/**
 * Attention sinks: the first `count` keys stay visible to every query at or after them, as in
 * StreamingLLM (`j < count` and `j <= pos(i)`: causal, so a sink never leaks a future key). Combine
 * with a window: `or(slidingWindow(256), sinks(4))`. Cost: ≈ count/Nk of the Nq×Nk entries.
 *
 * ```
 * sinks(2), Nq = Nk = 4    or(slidingWindow(1), sinks(1))
 * 1 0 0 0                  1 0 0 0
 * 1 1 0 0                  1 1 0 0
 * 1 1 0 0                  1 0 1 0
 * 1 1 0 0                  1 0 0 1
 * ```
 *
 * @param count Sink keys: a non-negative integer (at most 2^30), or one per query head (at most
 * 2^24 each; `lower()` checks that there is one per head).
 * @returns A bool Expr.
 * @throws {TypeError} If `count` is not a number or an array of numbers.
 * @throws {RangeError} If a count is not a non-negative integer in range, or the array is empty.
 * @example
 * ```ts
 * import { evaluate, or } from "@attend/attend/core";
 * import { sinks, slidingWindow } from "@attend/attend/variants";
 * const m = or(slidingWindow(2), sinks(1));
 * const at = (j: number) => evaluate(m, { qIdx: 5, kvIdx: j, qLen: 6, kvLen: 6 });
 * if (!at(0) || at(1) || !at(4) || !at(5)) throw new Error("sink 0 and the window");
 * ```
 */
export function sinks(count: number | readonly number[]): Expr {
  const n = perHead(count, "create sinks", "count", 0);
  return and(lt(kvIdx, n), le(kvIdx, qPos));
}
