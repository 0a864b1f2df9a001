import fc from "fast-check";
import { assertEquals } from "@std/assert";
import { prefixLM } from "../../variants/mod.ts";
import { assertMatches, assertSoundLayout, matrix } from "./_masks.ts";

Deno.test("prefixLM() shows the prefix to every query and later keys causally", () => {
  assertEquals(matrix(prefixLM(2), 4, 4), ["1 1 0 0", "1 1 0 0", "1 1 1 0", "1 1 1 1"]);
});

Deno.test("prefixLM(n) sees j < n or j <= pos(i), per head too", () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 30 }),
    fc.integer({ min: 1, max: 30 }),
    fc.oneof(fc.nat(40), fc.array(fc.nat(40), { minLength: 1, maxLength: 4 })),
    (qLen, kvLen, n) => {
      const ns = Array.isArray(n) ? n : [n];
      const pos = (i: number) => i + kvLen - qLen;
      const s = { qLen, kvLen, heads: ns.length };
      assertMatches(prefixLM(n), (_b, h, i, j) => j < ns[h] || j <= pos(i), s);
      assertSoundLayout(prefixLM(n), s, 3, 4);
    },
  ));
});
