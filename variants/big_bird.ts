/**
 * BigBird's block-sparse pattern with seeded random blocks.
 * @module
 */
import {
  abs,
  add,
  div,
  eq,
  type Expr,
  kvIdx,
  le,
  lookup,
  lt,
  mul,
  or,
  qPos,
  sub,
} from "../core/expr.ts";
import { assertInteger, fail, MAX_SIZE } from "../core/_check.ts";
import { MAX_TABLE } from "../core/_expr_type.ts";
import { checkKeys, floorDiv } from "./_args.ts";
import { mulberry32 } from "../core/_random.ts";

/** Options of `bigBird`; every count is in blocks. */
export interface BigBirdOptions {
  /** Key blocks visible on each side of the query's block (1: three blocks in all, as BigBird). */
  readonly window: number;
  /** The first `globals` blocks are global: they see every key and every query sees them. */
  readonly globals: number;
  /** Random key blocks per query block. */
  readonly randomBlocks: number;
  /** Positions per block. */
  readonly block: number;
  /** Seed of the random blocks: the same seed gives the same layout on every backend. */
  readonly seed: number;
  /** Positions the random layout covers: draws are made for `⌈length/block⌉` query blocks. */
  readonly length: number;
}

/**
 * BigBird (Zaheer et al., 2020), in blocks of `block` positions: a query block sees its
 * neighbours within `window` blocks, the `globals` first blocks (which also see everything), and
 * `randomBlocks` random key blocks. The random blocks are drawn at build time from `seed` (a
 * seeded PRNG, never at run time) among the blocks that are neither neighbours nor global, and
 * travel inside the Expr as a table, so every backend sees the same layout. The draws cover
 * `⌈length/block⌉` blocks: query blocks past them get no random blocks, and drawn key blocks
 * past the keys are simply absent. Not causal. Blocks follow bottom-right positions. Cost:
 * ≈ ((2·window + 1 + randomBlocks + globals)·block)/Nk + globals·block/Nq of the entries.
 *
 * ```
 * bigBird({ window: 0, globals: 1, randomBlocks: 1, block: 1, seed: 7, length: 5 })
 * 1 1 1 1 1
 * 1 1 1 0 0
 * 1 0 1 0 1
 * 1 0 0 1 1
 * 1 0 1 0 1
 * ```
 *
 * @param options See `BigBirdOptions`: `block` and `length` positive integers, `window`,
 * `globals`, `randomBlocks` non-negative ones, `seed` any integer in the 32-bit range.
 * @returns A bool Expr.
 * @throws {TypeError} If `options` is not an object with known keys, or a field not a number.
 * @throws {RangeError} If a field is out of range, or the draws (query blocks × randomBlocks)
 * exceed 8192.
 * @example
 * ```ts
 * import { evaluate } from "@attend/attend/core";
 * import { bigBird } from "@attend/attend/variants";
 * const options = { window: 1, globals: 1, randomBlocks: 2, block: 4, seed: 42, length: 64 };
 * const at = (m: ReturnType<typeof bigBird>, i: number, j: number) =>
 *   evaluate(m, { qIdx: i, kvIdx: j, qLen: 64, kvLen: 64 });
 * const [x, y] = [bigBird(options), bigBird(options)];
 * for (let i = 0; i < 64; i++) {
 *   for (let j = 0; j < 64; j++) if (at(x, i, j) !== at(y, i, j)) throw new Error("same seed");
 * }
 * // Global block 0, its own block and both neighbours are visible to query 40.
 * for (const j of [0, 36, 40, 44]) if (!at(x, 40, j)) throw new Error(`key ${j} hidden`);
 * if (!at(x, 0, 40)) throw new Error("the global block sees everything");
 * ```
 */
export function bigBird(options: BigBirdOptions): Expr {
  const context = "create BigBird mask";
  const keys = ["window", "globals", "randomBlocks", "block", "seed", "length"];
  checkKeys(
    context,
    options,
    keys,
    "an object { window, globals, randomBlocks, block, seed, length }",
  );
  const { window, globals, randomBlocks, block, seed, length } = options;
  assertInteger(window, context, "options.window", 0, MAX_SIZE);
  assertInteger(globals, context, "options.globals", 0, MAX_SIZE);
  assertInteger(randomBlocks, context, "options.randomBlocks", 0, MAX_SIZE);
  assertInteger(block, context, "options.block", 1, MAX_SIZE);
  assertInteger(seed, context, "options.seed", -(2 ** 31), 2 ** 32 - 1);
  assertInteger(length, context, "options.length", 1, MAX_SIZE);
  const blocks = Math.ceil(length / block);
  if (blocks * randomBlocks > MAX_TABLE) {
    const want = `at most ${MAX_TABLE} random draws (⌈length/block⌉·randomBlocks)`;
    fail("range", context, "options.randomBlocks", want, randomBlocks);
  }
  const [qBlock, kvBlock] = [floorDiv(qPos, block), div(kvIdx, block)];
  const span = Math.min(globals * block, MAX_SIZE);
  const parts = [
    le(abs(sub(qBlock, kvBlock)), window),
    lt(kvIdx, span),
    lt(qPos, span),
  ];
  if (randomBlocks > 0) {
    // draws[q·r + k] is random key block k of query block q, plus one (0: none).
    const draws = drawBlocks(blocks, { window, globals, randomBlocks, seed });
    for (let k = 0; k < randomBlocks; k++) {
      parts.push(eq(lookup(draws, add(mul(qBlock, randomBlocks), k)), add(kvBlock, 1)));
    }
  }
  return or(parts[0], ...parts.slice(1));
}

/** For each query block, `randomBlocks` distinct key blocks outside its window and the globals. */
function drawBlocks(
  blocks: number,
  o: { window: number; globals: number; randomBlocks: number; seed: number },
): number[] {
  const next = mulberry32(o.seed);
  const draws: number[] = [];
  for (let q = 0; q < blocks; q++) {
    const pool: number[] = [];
    for (let k = o.globals; k < blocks; k++) if (Math.abs(q - k) > o.window) pool.push(k);
    for (let k = 0; k < o.randomBlocks; k++) {
      if (k >= pool.length) {
        draws.push(0);
        continue;
      }
      const pick = k + Math.floor(next() * (pool.length - k)); // partial Fisher-Yates
      [pool[k], pool[pick]] = [pool[pick], pool[k]];
      draws.push(pool[k] + 1);
    }
  }
  return draws;
}
