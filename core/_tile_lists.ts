/**
 * The tile-lists builder behind `tileLists()` and `classifyBlocks()`, which name their own
 * operation in error messages.
 * @module
 */
import type { Expr } from "./expr.ts";
import { assertExpr, headParams, readsVar } from "./expr_tree.ts";
import { assertInteger, assertObject, checkOptions } from "./_check.ts";
import { type Bounds, compileInterval } from "./interval.ts";
import { compileKeyPieces, type Pieces } from "./_key_pieces.ts";
import type { ClassifyOptions, TileLists } from "./tile_lists.ts";

/**
 * Builds tile lists; errors say "Cannot {context}". With `perUnit` (the default), one layout per
 * batch element and head unit where the mask reads `b` or `h`; otherwise one over all of them.
 */
export function listTiles(
  mask: Expr | undefined,
  options: ClassifyOptions,
  context: string,
  perUnit = true,
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
  const batch = options.batch ?? 1, heads = options.heads ?? 1;
  const unitHeads = Math.ceil(heads / pack);
  const byBatch = perUnit && mask !== undefined && readsVar(mask, "b");
  const byHead = perUnit && mask !== undefined &&
    (readsVar(mask, "h") || headParams(mask).length > 0);
  // Row offsets of every distinct layout, one after another (at most one per unit).
  const most = (byBatch ? batch : 1) * (byHead ? unitHeads : 1);
  const rowStart = new Uint32Array(most * rows + 1);
  let rowEnd = 1;
  const entries = new Entries();
  const bound = mask && compileInterval(mask);
  const bounds: Bounds = { qLen: [qLen, qLen], kvLen: [kvLen, kvLen] };
  /** Lists the non-empty tiles of columns `[c0, c1)` of the current row. */
  const list = (c0: number, c1: number) => {
    let lo = 1, hi = 1;
    if (bound) {
      bounds.kvIdx = [c0 * tileKv, Math.min(kvLen, c1 * tileKv) - 1];
      [lo, hi] = bound(bounds);
    }
    if (hi <= 0) return;
    if (lo >= 1 || c1 - c0 === 1) {
      for (let c = c0; c < c1; c++) entries.push(c, lo >= 1 ? 0 : 1);
      return;
    }
    const mid = (c0 + c1) >> 1;
    list(c0, mid);
    list(mid, c1);
  };
  const closedForm = mask && compileKeyPieces(mask);
  /** Lists the tiles the pieces touch: full where true pieces cover the whole tile. */
  const listPieces = ({ starts, kinds }: Pieces) => {
    let tile = -1, covered = 0;
    const flush = () => {
      if (tile < 0) return;
      const size = Math.min(kvLen, (tile + 1) * tileKv) - tile * tileKv;
      entries.push(tile, covered === size ? 0 : 1);
    };
    for (let k = 0; k < kinds.length; k++) {
      if (kinds[k] === 0) continue;
      const from = starts[k], to = starts[k + 1] ?? kvLen;
      for (let c = Math.floor(from / tileKv); c * tileKv < to; c++) {
        if (c !== tile) flush(), tile = c, covered = 0;
        const overlap = Math.min(to, (c + 1) * tileKv) - Math.max(from, c * tileKv);
        if (kinds[k] === 1) covered += overlap;
      }
    }
    flush();
  };
  /** Appends the rows of one layout (for the batch and head ranges in `bounds`). */
  const listRows = () => {
    const base = rowEnd - 1;
    for (let row = 0; row < rows; row++) {
      const last = Math.min(qLen * pack, (row + 1) * tileQ) - 1;
      bounds.qIdx = [Math.floor((row * tileQ) / pack), Math.floor(last / pack)];
      const pieces = closedForm && cols > 0 ? closedForm(bounds, kvLen) : undefined;
      if (pieces) {
        listPieces(pieces);
        rowStart[rowEnd++] = entries.length;
        continue;
      }
      // Rows of structured masks change little: split at the previous row's listed span
      // (widened by a tile each side) so the ranges outside it are usually settled by one bound
      // each. Any split lists the same tiles, since every range is bisected to single tiles.
      const [from, to] = row > 0 ? [rowStart[base + row - 1], rowStart[base + row]] : [0, 0];
      if (to > from) {
        const a = Math.max(0, entries.cols[from] - 1);
        const b = Math.min(cols, entries.cols[to - 1] + 2);
        if (a > 0) list(0, a);
        list(a, b);
        if (b < cols) list(b, cols);
      } else if (cols > 0) {
        list(0, cols);
      }
      rowStart[rowEnd++] = entries.length;
    }
  };
  // One layout per distinct batch element and head range the mask tells apart; identical ones
  // are kept once (say, heads given the same window).
  const unitRow = new Uint32Array(batch * unitHeads);
  const kept: { base: number; entries: number; hash: number }[] = [];
  for (let b = 0; b < (byBatch ? batch : 1); b++) {
    for (let u = 0; u < (byHead ? unitHeads : 1); u++) {
      bounds.b = byBatch ? [b, b] : [0, Math.max(0, batch - 1)];
      bounds.h = byHead
        ? [u * pack, Math.min(heads, (u + 1) * pack) - 1]
        : [0, Math.max(0, heads - 1)];
      const added = { base: rowEnd - 1, entries: entries.length, hash: 0 };
      listRows();
      let at = added.base;
      if (byBatch || byHead) {
        added.hash = layoutHash(rowStart.subarray(0, rowEnd), entries, added);
        const same = kept.find((k) =>
          k.hash === added.hash && sameLayout(rowStart, entries, k, added, rows)
        );
        if (same) {
          at = same.base;
          rowEnd = added.base + 1;
          entries.length = added.entries;
        } else kept.push(added);
      }
      for (let bi = byBatch ? b : 0; bi < (byBatch ? b + 1 : batch); bi++) {
        for (let ui = byHead ? u : 0; ui < (byHead ? u + 1 : unitHeads); ui++) {
          unitRow[bi * unitHeads + ui] = at;
        }
      }
    }
  }
  return Object.freeze({
    tileQ,
    tileKv,
    pack,
    rows,
    cols,
    unitRow,
    rowStart: rowStart.slice(0, rowEnd),
    tileCol: entries.cols.slice(0, entries.length),
    partial: entries.kinds.slice(0, entries.length),
  });
}

/** Where one layout starts: its first row in `rowStart` and its first entry. */
interface LayoutStart {
  readonly base: number;
  readonly entries: number;
}

/** A hash of the layout starting at `at` (its rows' entry counts, columns and kinds). */
function layoutHash(
  rowStart: Uint32Array,
  entries: Entries,
  at: LayoutStart,
): number {
  const { cols, kinds } = entries;
  let h = 0x811c9dc5;
  const mix = (x: number) => h = Math.imul(h ^ x, 0x01000193);
  for (let r = at.base; r < rowStart.length; r++) mix(rowStart[r] - at.entries);
  for (let e = at.entries; e < entries.length; e++) mix(cols[e] * 2 + kinds[e]);
  return h >>> 0;
}

/** Whether the layouts starting at `a` and `b` list the same tiles. */
function sameLayout(
  rowStart: Uint32Array,
  entries: Entries,
  a: LayoutStart,
  b: LayoutStart,
  rows: number,
): boolean {
  const { cols, kinds } = entries;
  for (let r = 0; r <= rows; r++) {
    if (rowStart[a.base + r] - a.entries !== rowStart[b.base + r] - b.entries) return false;
  }
  for (let e = 0; e < rowStart[b.base + rows] - b.entries; e++) {
    const x = a.entries + e, y = b.entries + e;
    if (cols[x] !== cols[y] || kinds[x] !== kinds[y]) return false;
  }
  return true;
}

/** Listed tiles in typed arrays that double as they fill (plain arrays grow slowly). */
class Entries {
  cols = new Uint32Array(1024);
  kinds = new Uint8Array(1024);
  length = 0;

  push(col: number, partial: number): void {
    if (this.length === this.cols.length) {
      const cols = new Uint32Array(2 * this.length), kinds = new Uint8Array(2 * this.length);
      cols.set(this.cols), kinds.set(this.kinds);
      this.cols = cols, this.kinds = kinds;
    }
    this.cols[this.length] = col, this.kinds[this.length++] = partial;
  }
}
