import fc from "fast-check";
import { assertEquals } from "@std/assert";
import { and, causal } from "../../core/mod.ts";
import { strided } from "../../variants/mod.ts";
import { assertMatches, assertSoundLayout, matrix } from "./_masks.ts";

Deno.test("strided() sees a local band and every stride-th key from the query", () => {
  assertEquals(matrix(strided({ local: 2, stride: 3 }), 5, 5), [
    "1 1 0 1 0",
    "1 1 1 0 1",
    "0 1 1 1 0",
    "1 0 1 1 1",
    "0 1 0 1 1",
  ]);
});

Deno.test("and(causal(), strided()) is Child et al.'s autoregressive strided pattern", () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 30 }),
    fc.integer({ min: 1, max: 30 }),
    fc.nat(8),
    fc.integer({ min: 1, max: 8 }),
    (qLen, kvLen, local, stride) => {
      const pos = (i: number) => i + kvLen - qLen;
      const m = and(causal(), strided({ local, stride }));
      const allowed = (_b: number, _h: number, i: number, j: number) =>
        j <= pos(i) && (pos(i) - j < local || (pos(i) - j) % stride === 0);
      assertMatches(m, allowed, { qLen, kvLen });
      assertMatches(
        strided({ local, stride }),
        (_b, _h, i, j) => Math.abs(pos(i) - j) < local || Math.abs(pos(i) - j) % stride === 0,
        { qLen, kvLen },
      );
      assertSoundLayout(m, { qLen, kvLen }, 3, 2);
    },
  ));
});
