import fc from "fast-check";
import { assert, assertEquals, assertNotEquals, assertThrows } from "@std/assert";
import { exprKey } from "../../core/mod.ts";
import { bigBird, type BigBirdOptions } from "../../variants/mod.ts";
import { assertSoundLayout, matrix } from "./_masks.ts";

const optionsArb: fc.Arbitrary<BigBirdOptions> = fc.record({
  window: fc.nat(2),
  globals: fc.nat(2),
  randomBlocks: fc.nat(3),
  block: fc.integer({ min: 1, max: 4 }),
  seed: fc.integer(),
  length: fc.integer({ min: 1, max: 40 }),
});

Deno.test("bigBird() the same seed gives the same layout, another seed another one", () => {
  const o = { window: 1, globals: 1, randomBlocks: 2, block: 2, seed: 5, length: 32 };
  assertEquals(exprKey(bigBird(o)), exprKey(bigBird({ ...o })));
  assertNotEquals(matrix(bigBird(o), 32, 32), matrix(bigBird({ ...o, seed: 6 }), 32, 32));
});

Deno.test("bigBird() is window ∪ globals ∪ exactly randomBlocks distinct other blocks per query block", () => {
  fc.assert(fc.property(optionsArb, (o) => {
    const n = o.length, blocks = Math.ceil(n / o.block);
    const rows = matrix(bigBird(o), n, n).map((r) => r.split(" ").map(Number));
    for (let i = 0; i < n; i++) {
      const qb = Math.floor(i / o.block);
      const extra = new Set<number>();
      for (let j = 0; j < n; j++) {
        const kb = Math.floor(j / o.block);
        const local = Math.abs(qb - kb) <= o.window || kb < o.globals || qb < o.globals;
        if (local) assertEquals(rows[i][j], 1, `local i=${i} j=${j}`);
        else if (rows[i][j]) extra.add(kb);
        // A random block is visible as a whole, to the whole query block.
        assertEquals(
          rows[i][j],
          rows[qb * o.block][Math.min(n - 1, kb * o.block)],
          `block-wise i=${i} j=${j}`,
        );
      }
      if (qb >= o.globals) {
        let others = 0;
        for (let kb = o.globals; kb < blocks; kb++) if (Math.abs(qb - kb) > o.window) others++;
        assertEquals(extra.size, Math.min(o.randomBlocks, others), `query block ${qb}`);
      }
    }
    assertSoundLayout(bigBird(o), { qLen: n, kvLen: n }, o.block, o.block);
    assertSoundLayout(bigBird(o), { qLen: Math.max(1, n - 3), kvLen: n }, 3, 2);
  }));
});

Deno.test("bigBird() classifies exactly on its own blocks", () => {
  const o = { window: 1, globals: 1, randomBlocks: 2, block: 4, seed: 9, length: 64 };
  const counts = assertSoundLayout(bigBird(o), { qLen: 64, kvLen: 64 }, 4, 4);
  assertEquals(counts.partial, 0);
  assert(counts.empty > 0 && counts.full > 0, JSON.stringify(counts));
});

Deno.test("bigBird() refuses too many draws and a missing length by name", () => {
  assertThrows(
    () => bigBird({ window: 1, globals: 0, randomBlocks: 3, block: 1, seed: 0, length: 10000 }),
    RangeError,
    "options.randomBlocks must be at most 8192 random draws",
  );
  assertThrows(
    () => bigBird({ window: 1, globals: 0, randomBlocks: 1, block: 1, seed: 0 } as never),
    TypeError,
    "options.length must be an integer in 1..1073741824, current value is undefined",
  );
});
