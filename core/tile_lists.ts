/**
 * Compact block layouts: per query tile, the list of key tiles a kernel visits, each marked full
 * or partial (CSR-like). Built by bisecting each row's key range with the mask's interval bounds:
 * a range proven empty or full costs one bound, so a structured mask (causal, windows, documents)
 * costs O(tiles listed · log tiles), never O(Nq · Nk) and never a dense tiles × tiles table.
 * Masks whose bounds are loose (random blocks, tile matrices) fall back to one bound per tile.
 * @module
 */
import type { Expr } from "./expr.ts";
import { assertExpr } from "./expr_tree.ts";
import { assertInteger, assertObject, checkOptions } from "./_check.ts";
import { type Bounds, compileInterval } from "./interval.ts";

/** Sizes a mask is classified for. */
export interface ClassifyOptions {
  /** Query rows. */
  readonly qLen: number;
  /** Key rows. */
  readonly kvLen: number;
  /** Batch size (mask is classified over every batch index). */
  readonly batch?: number;
  /** Query heads (mask is classified over every head). */
  readonly heads?: number;
  /** Query rows per tile. */
  readonly tileQ: number;
  /** Key rows per tile. */
  readonly tileKv: number;
  /** Query heads interleaved per row tile (grouped-query packing); 1 when absent. */
  readonly pack?: number;
}

/**
 * The key tiles each query tile visits. Row `r` lists entries `rowStart[r]` to
 * `rowStart[r + 1] - 1`, in increasing column order; tiles not listed are empty. Tiles cover rows
 * `[r·tileQ, min((r+1)·tileQ, qLen·pack))` and likewise for keys; with `pack > 1`, row `f` is
 * query `⌊f / pack⌋` of one of `pack` interleaved heads.
 */
export interface TileLists {
  /** Query rows per tile. */
  readonly tileQ: number;
  /** Key rows per tile. */
  readonly tileKv: number;
  /** Query heads interleaved in one tile's rows (1: one head per tile). */
  readonly pack: number;
  /** Number of query tiles. */
  readonly rows: number;
  /** Number of key tiles. */
  readonly cols: number;
  /** `rows + 1` offsets into the entries. */
  readonly rowStart: Uint32Array;
  /** Key tile of each entry. */
  readonly tileCol: Uint32Array;
  /** 1 where the entry's tile is partial (the mask runs there), 0 where it is full. */
  readonly partial: Uint8Array;
}

/**
 * Lists the key tiles each query tile of a mask visits.
 *
 * @param mask A bool Expr, or undefined for no mask (every tile full).
 * @param options Lengths and tile sizes.
 * @returns The tile lists.
 * @throws {TypeError} If `mask` is not a bool Expr, or `options` not an object of numbers with
 * known keys.
 * @throws {RangeError} If a length is not a non-negative integer or a tile size not a positive one.
 * @example
 * ```ts
 * import { causal, tileLists } from "@attend/attend/core";
 * // Causal, 4 query tiles × 4 key tiles: row r lists tiles 0..r, the last one partial.
 * const lists = tileLists(causal(), { qLen: 64, kvLen: 64, tileQ: 16, tileKv: 16 });
 * if (lists.rowStart.join() !== "0,1,3,6,10") throw new Error("row offsets");
 * if (lists.partial.join() !== "1,0,1,0,0,1,0,0,0,1") throw new Error("diagonal tiles partial");
 * ```
 */
export function tileLists(
  mask: Expr | undefined,
  options: ClassifyOptions,
  context = "list tiles",
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

/**
 * Bytes a tile-lists layout holds: linear in the tiles listed.
 *
 * @param lists The layout.
 * @returns `4 · (rows + 1) + 5 · entries`.
 * @example
 * ```ts
 * import { tileLists, tileListsBytes } from "@attend/attend/core";
 * const lists = tileLists(undefined, { qLen: 32, kvLen: 32, tileQ: 16, tileKv: 16 });
 * if (tileListsBytes(lists) !== 4 * 3 + 5 * 4) throw new Error("bytes");
 * ```
 */
export function tileListsBytes(lists: TileLists): number {
  return lists.rowStart.byteLength + lists.tileCol.byteLength + lists.partial.byteLength;
}
