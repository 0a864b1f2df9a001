import fc from "fast-check";
import { assertEquals, assertThrows } from "@std/assert";
import { attention, lower, mask, tensorDesc } from "../../core/mod.ts";
import { cpuCaps } from "../../backends/cpu/mod.ts";
import { blockMask } from "../../variants/mod.ts";
import { assertMatches, assertSoundLayout, matrix } from "./_masks.ts";

Deno.test("blockMask() shows the keys of true tiles, and nothing past the matrix", () => {
  const m = blockMask([[true, false], [true, true]], { tileQ: 2, tileKv: 2 });
  assertEquals(matrix(m, 4, 4), ["1 1 0 0", "1 1 0 0", "1 1 1 1", "1 1 1 1"]);
  assertEquals(matrix(m, 5, 6), [
    "1 1 0 0 0 0",
    "1 1 0 0 0 0",
    "1 1 1 1 0 0",
    "1 1 1 1 0 0",
    "0 0 0 0 0 0",
  ]);
});

const matrixArb = (rows: number, cols: number) =>
  fc.array(fc.array(fc.boolean(), { minLength: cols, maxLength: cols }), {
    minLength: rows,
    maxLength: rows,
  });

Deno.test("blockMask() equals its tile matrix, shared or per head, and classifies exactly on its tiles", () => {
  fc.assert(fc.property(
    fc.record({
      rows: fc.integer({ min: 1, max: 5 }),
      cols: fc.integer({ min: 1, max: 5 }),
      heads: fc.integer({ min: 1, max: 3 }),
    })
      .chain(({ rows, cols, heads }) =>
        fc.record({
          tiles: fc.array(matrixArb(rows, cols), { minLength: heads, maxLength: heads }),
          shared: fc.boolean(),
          tileQ: fc.integer({ min: 1, max: 4 }),
          tileKv: fc.integer({ min: 1, max: 4 }),
          qLen: fc.integer({ min: 1, max: 24 }),
          kvLen: fc.integer({ min: 1, max: 24 }),
        })
      ),
    ({ tiles, shared, tileQ, tileKv, qLen, kvLen }) => {
      const heads = shared ? 1 : tiles.length;
      const m = shared
        ? blockMask(tiles[0], { tileQ, tileKv })
        : blockMask(tiles, { tileQ, tileKv });
      const allowed = (_b: number, h: number, i: number, j: number) =>
        tiles[shared ? 0 : h][Math.floor(i / tileQ)]?.[Math.floor(j / tileKv)] === true;
      assertMatches(m, allowed, { qLen, kvLen, heads });
      const counts = assertSoundLayout(m, { qLen, kvLen, heads }, tileQ, tileKv);
      if (heads === 1) assertEquals(counts.partial, 0, "exact on its own tiles");
      assertSoundLayout(m, { qLen, kvLen, heads }, 3, 5);
    },
  ));
});

Deno.test("blockMask() refuses ragged matrices by name, and lower() another head count", () => {
  assertThrows(
    () => blockMask([[true], [true, false]], { tileQ: 1, tileKv: 1 }),
    RangeError,
    "tiles[1].length must be 1, as tiles[0], current value is 2",
  );
  assertThrows(
    () => blockMask([[true, 1 as never]], { tileQ: 1, tileKv: 1 }),
    TypeError,
    "tiles[0][1] must be a boolean, current value is 1",
  );
  const x = tensorDesc([1, 2, 8, 8]);
  const three = [[[true]], [[true]], [[false]]];
  assertThrows(
    () => lower(mask(blockMask(three, { tileQ: 8, tileKv: 8 }))(attention(x, x, x)), cpuCaps),
    RangeError,
    "headParam values.length must be q heads (2)",
  );
});
