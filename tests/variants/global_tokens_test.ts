import fc from "fast-check";
import { assert, assertEquals, assertThrows } from "@std/assert";
import { or, window } from "../../core/mod.ts";
import { globalTokens } from "../../variants/mod.ts";
import { assertMatches, assertSoundLayout, matrix } from "./_masks.ts";

Deno.test("globalTokens() rows see everything and columns are seen by all", () => {
  assertEquals(matrix(globalTokens([1]), 4, 4), ["0 1 0 0", "1 1 1 1", "0 1 0 0", "0 1 0 0"]);
});

Deno.test("globalTokens() matches membership for random positions, Nq != Nk", () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 30 }),
    fc.integer({ min: 1, max: 30 }),
    fc.uniqueArray(fc.nat(40), { minLength: 1, maxLength: 6 }),
    fc.nat(3),
    (qLen, kvLen, positions, w) => {
      const pos = (i: number) => i + kvLen - qLen;
      const g = new Set(positions);
      const m = or(window(w, w), globalTokens(positions));
      const allowed = (_b: number, _h: number, i: number, j: number) =>
        g.has(pos(i)) || g.has(j) || Math.abs(pos(i) - j) <= w;
      assertMatches(m, allowed, { qLen, kvLen });
      assertSoundLayout(m, { qLen, kvLen }, 4, 4);
    },
  ));
  const counts = assertSoundLayout(globalTokens([0]), { qLen: 32, kvLen: 32 }, 4, 4);
  assert(counts.empty > 0, JSON.stringify(counts));
});

Deno.test("globalTokens() refuses repeated positions", () => {
  assertThrows(
    () => globalTokens([3, 1, 3]),
    RangeError,
    "positions must be distinct, current value is [3, 1, 3]",
  );
});
