/**
 * The tile-lists builder behind `tileLists()` and `classifyBlocks()`, which name their own
 * operation in error messages.
 * @module
 */
import type { Expr } from "./expr.ts";
import { assertExpr } from "./expr_tree.ts";
import { assertInteger, assertObject, checkOptions } from "./_check.ts";
import { type Bounds, compileInterval } from "./interval.ts";
import type { ClassifyOptions, TileLists } from "./tile_lists.ts";

/** Builds tile lists; errors say "Cannot {context}". */
export function listTiles(
  mask: Expr | undefined,
  options: ClassifyOptions,
  context: string,
): TileLists {
  if (mask !== undefined) assertExpr(mask, context, "mask", "mask");
  assertObject(options, context, "options");
  const number = "number" as const;
  checkOptions(context, "options", options, {
    qLen: number,
    kvLen: number,
    batch: number,
    heads: number,
    tileQ: number,
    tileKv: number,
    pack: number,
  });
  const { qLen, kvLen, tileQ, tileKv, pack = 1 } = options;
  for (const [field, value] of Object.entries({ qLen, kvLen })) {
    assertInteger(value, context, `options.${field}`, 0);
  }
  for (const [field, value] of Object.entries({ tileQ, tileKv, pack })) {
    assertInteger(value, context, `options.${field}`, 1);
  }
  const rows = Math.ceil((qLen * pack) / tileQ);
  const cols = Math.ceil(kvLen / tileKv);
  const rowStart = new Uint32Array(rows + 1);
  const tileCol: number[] = [], partial: number[] = [];
  const bounds: Bounds = {
    b: [0, Math.max(0, (options.batch ?? 1) - 1)],
    h: [0, Math.max(0, (options.heads ?? 1) - 1)],
    qLen: [qLen, qLen],
    kvLen: [kvLen, kvLen],
  };
  const bound = mask && compileInterval(mask);
  /** Lists the non-empty tiles of columns `[c0, c1)` of the current row. */
  const list = (c0: number, c1: number) => {
    let lo = 1, hi = 1;
    if (bound) {
      bounds.kvIdx = [c0 * tileKv, Math.min(kvLen, c1 * tileKv) - 1];
      [lo, hi] = bound(bounds);
    }
    if (hi <= 0) return;
    if (lo >= 1 || c1 - c0 === 1) {
      for (let c = c0; c < c1; c++) tileCol.push(c), partial.push(lo >= 1 ? 0 : 1);
      return;
    }
    const mid = (c0 + c1) >> 1;
    list(c0, mid);
    list(mid, c1);
  };
  for (let row = 0; row < rows; row++) {
    const last = Math.min(qLen * pack, (row + 1) * tileQ) - 1;
    bounds.qIdx = [Math.floor((row * tileQ) / pack), Math.floor(last / pack)];
    // Rows of structured masks change little: split at the previous row's listed span (widened
    // by a tile each side) so the ranges outside it are usually settled by one bound each. Any
    // split lists the same tiles, since every range is bisected down to single tiles.
    const [from, to] = row > 0 ? [rowStart[row - 1], rowStart[row]] : [0, 0];
    if (to > from) {
      const a = Math.max(0, tileCol[from] - 1), b = Math.min(cols, tileCol[to - 1] + 2);
      if (a > 0) list(0, a);
      list(a, b);
      if (b < cols) list(b, cols);
    } else if (cols > 0) {
      list(0, cols);
    }
    rowStart[row + 1] = tileCol.length;
  }
  return Object.freeze({
    tileQ,
    tileKv,
    pack,
    rows,
    cols,
    rowStart,
    tileCol: Uint32Array.from(tileCol),
    partial: Uint8Array.from(partial),
  });
}
