/**
 * Compact block layouts: per query tile, the list of key tiles a kernel visits, each marked full
 * or partial (CSR-like). Built by bisecting each row's key range with the mask's interval bounds:
 * a range proven empty or full costs one bound, so a structured mask (causal, windows, documents)
 * costs O(tiles listed · log tiles), never O(Nq · Nk) and never a dense tiles × tiles table.
 * Masks whose bounds are loose (random blocks, tile matrices) fall back to one bound per tile.
 * @module
 */
import type { Expr } from "./expr.ts";
import { assertObject, fail } from "./_check.ts";
import { listTiles } from "./_tile_lists.ts";

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
 * The key tiles each query tile visits, per unit: a batch element and a group of `pack` query
 * heads (one head when `pack` is 1), unit `b·⌈H/pack⌉ + ⌊h/pack⌋`. Row `r` of unit `u` lists
 * entries `rowStart[unitRow[u] + r]` to `rowStart[unitRow[u] + r + 1] - 1`, in increasing column
 * order; tiles not listed are empty. Units share one layout unless the mask reads `b` or `h`
 * (per-batch documents, per-head windows), and then identical layouts are still kept once.
 * Tiles cover rows `[r·tileQ, min((r+1)·tileQ, qLen·pack))` and likewise for keys; with
 * `pack > 1`, row `f` is query `⌊f / pack⌋` of one of `pack` interleaved heads.
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
  /** Each unit's first row in `rowStart` (a multiple of `rows`). */
  readonly unitRow: Uint32Array;
  /** `rows` offsets into the entries per distinct layout, and one past the last. */
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
export function tileLists(mask: Expr | undefined, options: ClassifyOptions): TileLists {
  return listTiles(mask, options, "list tiles");
}

/**
 * Bytes a tile-lists layout holds: linear in the tiles listed.
 *
 * @param lists The layout.
 * @returns `4 · units + 4 · (layouts · rows + 1) + 5 · entries`.
 * @throws {TypeError} If `lists` is not an object with typed `rowStart`, `tileCol`, `partial`.
 * @example
 * ```ts
 * import { tileLists, tileListsBytes } from "@attend/attend/core";
 * const lists = tileLists(undefined, { qLen: 32, kvLen: 32, tileQ: 16, tileKv: 16 });
 * if (tileListsBytes(lists) !== 4 + 4 * 3 + 5 * 4) throw new Error("bytes");
 * ```
 */
export function tileListsBytes(lists: TileLists): number {
  assertObject(lists, "measure tile lists", "lists", "tile lists from tileLists()");
  for (const field of ["unitRow", "rowStart", "tileCol", "partial"] as const) {
    if (!ArrayBuffer.isView(lists[field])) {
      fail("type", "measure tile lists", `lists.${field}`, "a typed array", lists[field]);
    }
  }
  return lists.unitRow.byteLength + lists.rowStart.byteLength + lists.tileCol.byteLength +
    lists.partial.byteLength;
}

/**
 * The first row in `rowStart` of the layout query head `h` of batch element `b` reads.
 *
 * @param lists The layout.
 * @param heads Query heads of the problem.
 * @param b Batch element.
 * @param h Query head.
 * @returns An index into `rowStart`: row `r` of that head's tiles is `rowStart[base + r]`.
 * @example
 * ```ts
 * import { firstRow, headParam, kvIdx, lt, tileLists } from "@attend/attend/core";
 * // Head 0 sees 4 keys and head 1 sees 12: two layouts, head 1's after head 0's row.
 * const lists = tileLists(lt(kvIdx, headParam([4, 12])), { qLen: 8, kvLen: 16, heads: 2, tileQ: 8, tileKv: 8 });
 * if (firstRow(lists, 2, 0, 1) !== 1) throw new Error("head 1 starts at row 1");
 * ```
 */
export function firstRow(
  lists: Pick<TileLists, "unitRow" | "pack">,
  heads: number,
  b: number,
  h: number,
): number {
  return lists.unitRow[b * Math.ceil(heads / lists.pack) + Math.floor(h / lists.pack)];
}
