/**
 * The Sparse Transformer's fixed pattern.
 * @module
 */
import { div, eq, type Expr, ge, kvIdx, mod, or, qPos } from "../core/expr.ts";
import { assertInteger, fail, MAX_SIZE } from "../core/_check.ts";
import { checkKeys, floorDiv } from "./_args.ts";

/** Options of `fixedPattern`. */
export interface FixedPatternOptions {
  /** Positions per block (the paper's `l`). */
  readonly block: number;
  /** Summary keys at the end of every block, visible to all queries (the paper's `c`). */
  readonly summary: number;
}

/**
 * The fixed pattern of the Sparse Transformer (Child et al., 2019): a query sees every key of its
 * own block, `⌊pos(i)/block⌋ == ⌊j/block⌋`, and the last `summary` keys of every block,
 * `j % block >= block - summary`. Not causal: `and(causal(), fixedPattern(…))` is the paper's
 * autoregressive form. Cost: ≈ block/Nk + summary/block of the Nq×Nk entries.
 *
 * ```
 * fixedPattern({ block: 2, summary: 1 }), Nq = Nk = 4
 * 1 1 0 1
 * 1 1 0 1
 * 0 1 1 1
 * 0 1 1 1
 * ```
 *
 * @param options `block`, a positive integer (at most 2^30), and `summary`, an integer in
 * `0..block`.
 * @returns A bool Expr.
 * @throws {TypeError} If `options` is not an object with known keys, or a field not a number.
 * @throws {RangeError} If `block` or `summary` is out of range.
 * @example
 * ```ts
 * import { and, causal, evaluate } from "@attend/attend/core";
 * import { fixedPattern } from "@attend/attend/variants";
 * const m = and(causal(), fixedPattern({ block: 4, summary: 1 }));
 * const at = (j: number) => evaluate(m, { qIdx: 9, kvIdx: j, qLen: 12, kvLen: 12 });
 * if (!at(3) || at(4) || !at(7) || !at(8) || !at(9) || at(10)) throw new Error("fixed pattern");
 * ```
 */
export function fixedPattern(options: FixedPatternOptions): Expr {
  const context = "create fixed pattern";
  checkKeys(context, options, ["block", "summary"], "an object { block, summary }");
  const { block, summary } = options;
  assertInteger(block, context, "options.block", 1, MAX_SIZE);
  assertInteger(summary, context, "options.summary", 0, MAX_SIZE);
  if (summary > block) {
    fail("range", context, "options.summary", `at most block (${block})`, summary);
  }
  const sameBlock = eq(floorDiv(qPos, block), div(kvIdx, block));
  return summary === 0 ? sameBlock : or(sameBlock, ge(mod(kvIdx, block), block - summary));
}
