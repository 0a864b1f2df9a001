/**
 * The flash tile a masked spec runs with, by a small table: the backend's preferred tile, unless
 * the mask follows blocks of query rows that the tile's rows straddle. A tile whose rows span two
 * such blocks is partial wherever the blocks differ (BigBird's random blocks, block masks), so
 * the mask would run on every element of most tiles; a tile that divides the block keeps them
 * full or empty.
 * @module
 */
import type { Expr } from "./expr.ts";
import { readsVar } from "./expr_tree.ts";
import type { TileShape } from "./spec.ts";

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * The block of query rows a mask follows: the gcd of the constant divisors of its integer
 * divisions whose dividend reads `qIdx` (0 when it has none).
 */
export function queryBlock(e: Expr): number {
  const children = (x: Expr): Expr[] =>
    "cond" in x ? [x.cond, x.a, x.b] : "b" in x ? [x.a, x.b] : "a" in x ? [x.a] : [];
  let block = 0;
  const walk = (x: Expr) => {
    if (
      x.op === "div" && x.b.op === "lit" && Number.isInteger(x.b.value) && x.b.value > 1 &&
      readsVar(x.a, "qIdx")
    ) {
      block = gcd(block, x.b.value);
    }
    children(x).forEach(walk);
  };
  walk(e);
  return block;
}

/** A tile choice and why it was made (recorded in the plan). */
export interface TileChoice {
  readonly tile: TileShape;
  readonly reason: string;
}

/**
 * Picks the tile for a spec without a requested tile.
 *
 * With fewer query rows (`Nq` times the heads packed per tile) than the preferred tile holds, as
 * in decode, the listed tile of the same key width with the fewest rows that still hold them all:
 * the rest of a 128-row tile would be idle invocations.
 *
 * @param preferred The backend's tiles for the head dimension, preferred first.
 * @param anyTile Whether the backend runs any tile shape.
 * @param mask The spec's mask.
 * @param rows Query rows a tile column holds: `Nq` times the packed heads.
 */
export function chooseFlashTile(
  preferred: readonly TileShape[],
  anyTile: boolean,
  mask: Expr | undefined,
  rows: number,
): TileChoice {
  const first = preferred[0];
  const block = mask ? queryBlock(mask) : 0;
  const small =
    preferred.filter((t) =>
      t.kv === first.kv && t.q >= rows && t.q < first.q && (block === 0 || block % t.q === 0)
    ).sort((a, b) => a.q - b.q)[0];
  if (small) return { tile: small, reason: `few query rows (${rows})` };
  if (block === 0 || block % first.q === 0) return { tile: first, reason: "preferred" };
  const fits = preferred.find((t) => block % t.q === 0);
  if (fits) return { tile: fits, reason: `query rows in blocks of ${block}` };
  if (anyTile && block % 4 === 0 && block < first.q) {
    return { tile: { q: block, kv: first.kv }, reason: `query rows in blocks of ${block}` };
  }
  return { tile: first, reason: "preferred" };
}
