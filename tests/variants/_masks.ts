/**
 * Checks shared by the mask tests: a mask's 0/1 matrix, element-wise agreement with a predicate
 * written independently in the test, and soundness of its tile classification.
 * @module
 */
import { assert, assertEquals } from "@std/assert";
import { BlockKind, classifyBlocks, compileExpr, type Expr } from "../../core/mod.ts";

/** Sizes of a check. */
export interface Sizes {
  readonly qLen: number;
  readonly kvLen: number;
  readonly batch?: number;
  readonly heads?: number;
}

/** A predicate over `(b, h, i, j)`, with the sizes at hand (`pos(i) = i + Nk - Nq`). */
export type Allowed = (b: number, h: number, i: number, j: number) => boolean;

/** The mask's rows as strings of `0`/`1` separated by spaces, for one batch element and head. */
export function matrix(e: Expr, qLen: number, kvLen: number, b = 0, h = 0): string[] {
  const f = compileExpr(e);
  return Array.from(
    { length: qLen },
    (_, i) =>
      Array.from({ length: kvLen }, (_, j) => f({ b, h, qIdx: i, kvIdx: j, qLen, kvLen }) ? 1 : 0)
        .join(" "),
  );
}

/** Every element of the mask equals the predicate. */
export function assertMatches(e: Expr, allowed: Allowed, s: Sizes): void {
  const f = compileExpr(e);
  const { qLen, kvLen, batch = 1, heads = 1 } = s;
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < qLen; i++) {
        for (let j = 0; j < kvLen; j++) {
          const got = f({ b, h, qIdx: i, kvIdx: j, qLen, kvLen }) !== 0;
          if (got !== allowed(b, h, i, j)) {
            assertEquals(
              got,
              allowed(b, h, i, j),
              `b=${b} h=${h} i=${i} j=${j} ${JSON.stringify(s)}`,
            );
          }
        }
      }
    }
  }
}

/**
 * Tiles classified full hold only allowed entries and tiles classified empty none, over every
 * batch element and head; returns the counts of each kind so tests can check the classification
 * is not trivially all partial.
 */
export function assertSoundLayout(
  e: Expr,
  s: Sizes,
  tileQ: number,
  tileKv: number,
): { empty: number; partial: number; full: number } {
  const { qLen, kvLen, batch = 1, heads = 1 } = s;
  const layout = classifyBlocks(e, { qLen, kvLen, batch, heads, tileQ, tileKv });
  const f = compileExpr(e);
  const counts = { empty: 0, partial: 0, full: 0 };
  for (let row = 0; row < layout.rows; row++) {
    for (let col = 0; col < layout.cols; col++) {
      const kind = layout.kinds[row * layout.cols + col];
      counts[kind === BlockKind.empty ? "empty" : kind === BlockKind.full ? "full" : "partial"]++;
      if (kind === BlockKind.partial) continue;
      for (let b = 0; b < batch; b++) {
        for (let h = 0; h < heads; h++) {
          for (let i = row * tileQ; i < Math.min(qLen, (row + 1) * tileQ); i++) {
            for (let j = col * tileKv; j < Math.min(kvLen, (col + 1) * tileKv); j++) {
              const v = f({ b, h, qIdx: i, kvIdx: j, qLen, kvLen }) !== 0;
              assert(
                v === (kind === BlockKind.full),
                `tile (${row}, ${col}) claimed ${kind === BlockKind.full ? "full" : "empty"} but ` +
                  `b=${b} h=${h} i=${i} j=${j} is ${v} (${JSON.stringify(s)}, ${tileQ}x${tileKv})`,
              );
            }
          }
        }
      }
    }
  }
  return counts;
}
