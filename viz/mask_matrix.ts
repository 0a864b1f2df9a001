/**
 * `maskMatrix()`: a mask Expr evaluated at every query and key, as a matrix for `heatmap()`.
 * @module
 */
import { compileExpr, type Expr, typeOf } from "../core/mod.ts";
import type { Matrix } from "./heatmap.ts";

/** Sizes and indices a mask is evaluated at. */
export interface MaskMatrixOptions {
  /** Query rows. */
  readonly qLen: number;
  /** Key rows. */
  readonly kvLen: number;
  /** Batch index; 0 by default. */
  readonly b?: number;
  /** Query head; 0 by default. */
  readonly h?: number;
}

function assertIndex(name: string, value: number, least: number): void {
  if (!Number.isInteger(value) || value < least) {
    throw new RangeError(
      `Cannot build mask matrix: ${name} must be an integer >= ${least}, current value is ${value}`,
    );
  }
}

/**
 * Evaluates a mask at every `(qIdx, kvIdx)` of one batch element and head: 1 where the key is
 * visible, 0 where it is hidden. Dense (`qLen × kvLen`), for pictures and small checks.
 *
 * ```
 * causal(), qLen = 2, kvLen = 4 (bottom-right aligned)
 * 1 1 1 0
 * 1 1 1 1
 * ```
 *
 * @param mask A bool Expr over `b`, `h`, `qIdx`, `kvIdx`, `qLen`, `kvLen`.
 * @param options Lengths, and the batch index and head to evaluate at.
 * @returns A `qLen × kvLen` matrix of 0s and 1s.
 * @throws {TypeError} If `mask` is not a bool Expr.
 * @throws {RangeError} If a length is not a positive integer or an index is negative.
 * @example
 * ```ts
 * import { causal } from "@attend/attend";
 * import { maskMatrix } from "@attend/attend/viz";
 * const m = maskMatrix(causal(), { qLen: 2, kvLen: 4 });
 * if (Array.from(m.data).join("") !== "11101111") throw new Error("bottom-right causal");
 * ```
 */
export function maskMatrix(mask: Expr, options: MaskMatrixOptions): Matrix {
  const type = typeOf(mask);
  if (type !== "bool") {
    throw new TypeError(`Cannot build mask matrix: mask must be bool, current type is ${type}`);
  }
  const { qLen, kvLen, b = 0, h = 0 } = options;
  assertIndex("qLen", qLen, 1);
  assertIndex("kvLen", kvLen, 1);
  assertIndex("b", b, 0);
  assertIndex("h", h, 0);
  const allowed = compileExpr(mask);
  const data = new Uint8Array(qLen * kvLen);
  const env = { b, h, qLen, kvLen, qIdx: 0, kvIdx: 0 };
  for (env.qIdx = 0; env.qIdx < qLen; env.qIdx++) {
    for (env.kvIdx = 0; env.kvIdx < kvLen; env.kvIdx++) {
      data[env.qIdx * kvLen + env.kvIdx] = allowed(env) ? 1 : 0;
    }
  }
  return { rows: qLen, cols: kvLen, data };
}
