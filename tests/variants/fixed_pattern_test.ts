import fc from "fast-check";
import { assert, assertEquals } from "@std/assert";
import { and, causal } from "../../core/mod.ts";
import { fixedPattern } from "../../variants/mod.ts";
import { assertMatches, assertSoundLayout, matrix } from "./_masks.ts";

Deno.test("fixedPattern() sees its own block and the summary columns of every block", () => {
  assertEquals(matrix(fixedPattern({ block: 2, summary: 1 }), 4, 4), [
    "1 1 0 1",
    "1 1 0 1",
    "0 1 1 1",
    "0 1 1 1",
  ]);
  assertEquals(matrix(and(causal(), fixedPattern({ block: 3, summary: 1 })), 6, 6), [
    "1 0 0 0 0 0",
    "1 1 0 0 0 0",
    "1 1 1 0 0 0",
    "0 0 1 1 0 0",
    "0 0 1 1 1 0",
    "0 0 1 1 1 1",
  ]);
});

Deno.test("fixedPattern() matches Child et al.'s A(1) ∪ A(2), Nq != Nk, negative positions", () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 30 }),
    fc.integer({ min: 1, max: 30 }),
    fc.integer({ min: 1, max: 8 }).chain((block) =>
      fc.record({ block: fc.constant(block), summary: fc.integer({ min: 0, max: block }) })
    ),
    (qLen, kvLen, o) => {
      const pos = (i: number) => i + kvLen - qLen;
      const allowed = (_b: number, _h: number, i: number, j: number) =>
        Math.floor(pos(i) / o.block) === Math.floor(j / o.block) ||
        j % o.block >= o.block - o.summary;
      const m = fixedPattern(o);
      assertMatches(m, allowed, { qLen, kvLen });
      assertSoundLayout(m, { qLen, kvLen }, 2, 3);
    },
  ));
  const counts = assertSoundLayout(
    fixedPattern({ block: 8, summary: 0 }),
    { qLen: 32, kvLen: 32 },
    8,
    8,
  );
  assertEquals(counts, { empty: 12, partial: 0, full: 4 });
  assert(
    assertSoundLayout(fixedPattern({ block: 8, summary: 2 }), { qLen: 32, kvLen: 32 }, 4, 2).full >
      0,
  );
});
