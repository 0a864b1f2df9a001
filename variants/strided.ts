/**
 * The Sparse Transformer's strided pattern.
 * @module
 */
import { abs, eq, type Expr, kvIdx, lt, mod, or, qPos, sub } from "../core/expr.ts";
import { assertInteger, MAX_SIZE } from "../core/_check.ts";
import { checkKeys } from "./_args.ts";

/** Options of `strided`. */
export interface StridedOptions {
  /** Width of the local band: keys less than `local` positions away. */
  readonly local: number;
  /** Distance between the band's strided keys (the paper's `l`). */
  readonly stride: number;
}

/**
 * The strided pattern of the Sparse Transformer (Child et al., 2019): a query sees the keys less
 * than `local` positions away, `|pos(i) - j| < local`, and every `stride`-th key counted from
 * itself, `(pos(i) - j) % stride == 0`. Not causal: `and(causal(), strided(…))` is the paper's
 * autoregressive form (its `local` keys before the query, itself included, and every
 * `stride`-th earlier key). Cost: ≈ (2·local - 1)/Nk + 1/stride of the Nq×Nk entries.
 *
 * ```
 * strided({ local: 2, stride: 3 }), Nq = Nk = 5
 * 1 1 0 1 0
 * 1 1 1 0 1
 * 0 1 1 1 0
 * 1 0 1 1 1
 * 0 1 0 1 1
 * ```
 *
 * @param options `local`, a non-negative integer, and `stride`, a positive one (both at most
 * 2^30).
 * @returns A bool Expr.
 * @throws {TypeError} If `options` is not an object with known keys, or a field not a number.
 * @throws {RangeError} If `local` or `stride` is out of range.
 * @example
 * ```ts
 * import { and, causal, evaluate } from "@attend/attend/core";
 * import { strided } from "@attend/attend/variants";
 * const m = and(causal(), strided({ local: 2, stride: 4 }));
 * const at = (j: number) => evaluate(m, { qIdx: 9, kvIdx: j, qLen: 10, kvLen: 10 });
 * if (!at(9) || !at(8) || at(7) || !at(5) || !at(1) || at(10)) throw new Error("strided");
 * ```
 */
export function strided(options: StridedOptions): Expr {
  const context = "create strided pattern";
  checkKeys(context, options, ["local", "stride"], "an object { local, stride }");
  const { local, stride } = options;
  assertInteger(local, context, "options.local", 0, MAX_SIZE);
  assertInteger(stride, context, "options.stride", 1, MAX_SIZE);
  const d = sub(qPos, kvIdx);
  return or(lt(abs(d), local), eq(mod(d, stride), 0));
}
