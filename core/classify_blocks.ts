/**
 * Tile kinds as a dense matrix: which tiles of the `qLen × kvLen` score matrix are empty (no
 * allowed key), full (every key allowed) or partial. For inspection and pictures; kernels read
 * the compact `tileLists()`, which this expands.
 * @module
 */
import type { Expr } from "./expr.ts";
import { assertObject, fail } from "./_check.ts";
import type { ClassifyOptions } from "./tile_lists.ts";
import { listTiles } from "./_tile_lists.ts";

/** Tile kinds, in the order kernels read them. */
export const BlockKind: Readonly<{ empty: 0; partial: 1; full: 2 }> = Object.freeze(
  { empty: 0, partial: 1, full: 2 } as const,
);
/** A tile kind: 0 empty, 1 partial, 2 full. */
export type BlockKind = typeof BlockKind[keyof typeof BlockKind];

/**
 * Block-sparse data: `kinds[row * cols + col]` classifies query tile `row` against key tile
 * `col`. Tiles cover rows `[row·tileQ, min((row+1)·tileQ, qLen·pack))` and likewise for keys;
 * with `pack > 1`, row `f` is query `⌊f / pack⌋` of one of `pack` interleaved heads.
 */
export interface BlockLayout {
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
  /** One BlockKind per tile, row-major. */
  readonly kinds: Uint8Array;
}

/**
 * Classifies every tile of a mask as empty, partial or full.
 *
 * @param mask A bool Expr.
 * @param options Lengths and tile sizes.
 * @returns The block layout.
 * @throws {TypeError} If `mask` is not a bool Expr, or `options` not an object of numbers with
 * known keys.
 * @throws {RangeError} If a length is not a non-negative integer or a tile size not a positive one.
 * @example
 * ```ts
 * import { BlockKind, causal, classifyBlocks } from "@attend/attend/core";
 * // 1 0      tile (0,0) of a 4×4 causal mask with 2×2 tiles is partial,
 * // 1 1 0 0  tile (0,1) empty, tile (1,0) full.
 * const layout = classifyBlocks(causal(), { qLen: 4, kvLen: 4, tileQ: 2, tileKv: 2 });
 * if (layout.kinds[1] !== BlockKind.empty || layout.kinds[2] !== BlockKind.full) {
 *   throw new Error("unexpected layout");
 * }
 * ```
 */
export function classifyBlocks(mask: Expr | undefined, options: ClassifyOptions): BlockLayout {
  const lists = listTiles(mask, options, "classify blocks", false);
  const { tileQ, tileKv, pack, rows, cols } = lists;
  const kinds = new Uint8Array(rows * cols);
  for (let row = 0; row < rows; row++) {
    for (let e = lists.rowStart[row]; e < lists.rowStart[row + 1]; e++) {
      kinds[row * cols + lists.tileCol[e]] = lists.partial[e] ? BlockKind.partial : BlockKind.full;
    }
  }
  return Object.freeze({ tileQ, tileKv, pack, rows, cols, kinds });
}

/**
 * Fraction of tiles that are not empty (1 for a layout with no tiles).
 *
 * @param layout A block layout.
 * @returns The density in [0, 1].
 * @throws {TypeError} If `layout` has no `kinds` array.
 * @example
 * ```ts
 * import { causal, classifyBlocks, density } from "@attend/attend/core";
 * const d = density(classifyBlocks(causal(), { qLen: 64, kvLen: 64, tileQ: 16, tileKv: 16 }));
 * if (d !== 10 / 16) throw new Error(`density ${d}`);
 * ```
 */
export function density(layout: BlockLayout): number {
  assertObject(layout, "measure density", "layout", "a block layout");
  if (!(layout.kinds instanceof Uint8Array)) {
    fail("type", "measure density", "layout.kinds", "a Uint8Array", layout.kinds);
  }
  if (layout.kinds.length === 0) return 1;
  return layout.kinds.reduce((n, k) => n + (k === BlockKind.empty ? 0 : 1), 0) /
    layout.kinds.length;
}
