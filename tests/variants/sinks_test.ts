import fc from "fast-check";
import { assertEquals } from "@std/assert";
import { or } from "../../core/mod.ts";
import { sinks, slidingWindow } from "../../variants/mod.ts";
import { assertMatches, assertSoundLayout, matrix } from "./_masks.ts";

const sizes = fc.record({
  qLen: fc.integer({ min: 1, max: 30 }),
  kvLen: fc.integer({ min: 1, max: 30 }),
});

Deno.test("sinks() keeps the first keys visible, never a future one", () => {
  assertEquals(matrix(sinks(2), 4, 4), ["1 0 0 0", "1 1 0 0", "1 1 0 0", "1 1 0 0"]);
  assertEquals(matrix(or(slidingWindow(1), sinks(1)), 4, 4), [
    "1 0 0 0",
    "1 1 0 0",
    "1 0 1 0",
    "1 0 0 1",
  ]);
});

Deno.test("sinks(count) sees j < count and j <= pos(i), per head too", () => {
  fc.assert(fc.property(
    sizes,
    fc.oneof(fc.nat(40), fc.array(fc.nat(40), { minLength: 1, maxLength: 4 })),
    ({ qLen, kvLen }, count) => {
      const counts = Array.isArray(count) ? count : [count];
      const pos = (i: number) => i + kvLen - qLen;
      const allowed = (_b: number, h: number, i: number, j: number) => j < counts[h] && j <= pos(i);
      const s = { qLen, kvLen, heads: counts.length };
      assertMatches(sinks(count), allowed, s);
      assertSoundLayout(sinks(count), s, 4, 3);
    },
  ));
});
