/**
 * A user's boolean tile matrix as a mask.
 * @module
 */
import {
  add,
  and,
  div,
  eq,
  type Expr,
  float,
  h,
  headParam,
  kvIdx,
  lookup,
  lt,
  mul,
  ne,
  qIdx,
} from "../core/expr.ts";
import { assertArray, assertInteger, checkOptions, fail, MAX_SIZE } from "../core/_check.ts";
import { MAX_TABLE } from "../core/_expr_type.ts";

/** Tile sizes of `blockMask`. */
export interface BlockMaskOptions {
  /** Query rows per tile. */
  readonly tileQ: number;
  /** Key rows per tile. */
  readonly tileKv: number;
}

/**
 * A block mask given as data: `tiles[r][c]` says whether query rows `r·tileQ … (r+1)·tileQ - 1`
 * see keys `c·tileKv … (c+1)·tileKv - 1` (tiles of the score matrix as indexed, `qIdx`, not
 * bottom-right positions). Rows and keys past the matrix see nothing. With one matrix per query
 * head (`tiles[h][r][c]`), each head has its own; `lower()` then checks that there is one per
 * head. Classified exactly when the plan's tiles divide `tileQ × tileKv`. Cost: the fraction of
 * true tiles.
 *
 * ```
 * blockMask([[true, false], [true, true]], { tileQ: 2, tileKv: 2 }), Nq = Nk = 4
 * 1 1 0 0
 * 1 1 0 0
 * 1 1 1 1
 * 1 1 1 1
 * ```
 *
 * @param tiles A non-empty matrix of booleans (rows of equal length), or one per query head
 * (all of one shape); at most 8192 tiles in all.
 * @param options `tileQ` and `tileKv`, positive integers (at most 2^30).
 * @returns A bool Expr.
 * @throws {TypeError} If `tiles` is not a matrix (or list of matrices) of booleans, or `options`
 * not an object of numbers with known keys.
 * @throws {RangeError} If the matrix is empty or ragged, too large, or a tile size out of range.
 * @example
 * ```ts
 * import { evaluate } from "@attend/attend/core";
 * import { blockMask } from "@attend/attend/variants";
 * const m = blockMask([[true, false], [false, true]], { tileQ: 4, tileKv: 8 });
 * const at = (i: number, j: number) => evaluate(m, { qIdx: i, kvIdx: j, qLen: 8, kvLen: 16 });
 * if (!at(3, 7) || at(3, 8) || !at(4, 15) || at(4, 0)) throw new Error("tile matrix");
 * ```
 */
export function blockMask(
  tiles: readonly (readonly boolean[])[] | readonly (readonly (readonly boolean[])[])[],
  options: BlockMaskOptions,
): Expr {
  const context = "create block mask";
  checkOptions(context, "options", options, { tileQ: "number", tileKv: "number" });
  if (options === undefined) {
    fail("type", context, "options", "an object { tileQ, tileKv }", options);
  }
  assertInteger(options.tileQ, context, "options.tileQ", 1, MAX_SIZE);
  assertInteger(options.tileKv, context, "options.tileKv", 1, MAX_SIZE);
  assertArray(tiles, context, "tiles", "a matrix of booleans");
  if (tiles.length === 0) fail("range", context, "tiles", "non-empty", tiles);
  const perHead = Array.isArray(tiles[0]) && Array.isArray(tiles[0][0]);
  const matrices = (perHead ? tiles : [tiles]) as readonly unknown[];
  const flags: number[] = [];
  let rows = 0, cols = 0;
  matrices.forEach((matrix, m) => {
    const field = perHead ? `tiles[${m}]` : "tiles";
    assertArray(matrix, context, field, "a matrix of booleans");
    if (m === 0) rows = matrix.length;
    if (matrix.length === 0 || matrix.length !== rows) {
      fail(
        "range",
        context,
        `${field}.length`,
        m ? `${rows}, as tiles[0]` : "positive",
        matrix.length,
      );
    }
    matrix.forEach((row, r) => {
      assertArray(row, context, `${field}[${r}]`, "an array of booleans");
      if (m === 0 && r === 0) cols = row.length;
      if (row.length === 0 || row.length !== cols) {
        const want = m || r ? `${cols}, as ${perHead ? "tiles[0][0]" : "tiles[0]"}` : "positive";
        fail("range", context, `${field}[${r}].length`, want, row.length);
      }
      if (flags.length + row.length > MAX_TABLE) {
        fail("range", context, "tiles", `at most ${MAX_TABLE} tiles in all`, tiles);
      }
      row.forEach((t, c) => {
        if (typeof t !== "boolean") fail("type", context, `${field}[${r}][${c}]`, "a boolean", t);
        flags.push(t ? 1 : 0);
      });
    });
  });
  const { tileQ, tileKv } = options;
  const col = div(kvIdx, tileKv);
  const tile = add(mul(div(qIdx, tileQ), cols), col);
  // Past the matrix a flat tile index would read the next row or head: those see nothing.
  const [qEnd, kvEnd] = [rows * tileQ, cols * tileKv].map((n) => Math.min(n, MAX_SIZE));
  const inside = and(lt(qIdx, qEnd), lt(kvIdx, kvEnd));
  if (!perHead) return and(inside, ne(lookup(flags, tile), 0));
  // A visible tile holds 1; comparing with a head parameter of ones makes lower() check that
  // there is one matrix per query head.
  const visible = eq(
    float(lookup(flags, add(mul(h, rows * cols), tile))),
    headParam(matrices.map(() => 1)),
  );
  return and(inside, visible);
}
