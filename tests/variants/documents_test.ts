import fc from "fast-check";
import { assert, assertEquals, assertThrows } from "@std/assert";
import { and, causal } from "../../core/mod.ts";
import { documents } from "../../variants/mod.ts";
import { assertMatches, assertSoundLayout, matrix } from "./_masks.ts";

/** The document of each position, or -1 past them: the brute-force expectation. */
function docOf(lengths: number[]): (p: number) => number {
  const ids = lengths.flatMap((n, d) => Array<number>(n).fill(d));
  return (p) => p >= 0 && p < ids.length ? ids[p] : -1;
}

const lengthsArb = fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 5 });

Deno.test("documents() is block diagonal, and positions past the documents see nothing", () => {
  assertEquals(matrix(documents([2, 1, 2]), 5, 5), [
    "1 1 0 0 0",
    "1 1 0 0 0",
    "0 0 1 0 0",
    "0 0 0 1 1",
    "0 0 0 1 1",
  ]);
  assertEquals(matrix(and(causal(), documents([2, 1])), 4, 4), [
    "1 0 0 0",
    "1 1 0 0",
    "0 0 1 0",
    "0 0 0 0",
  ]);
});

Deno.test("documents() keeps each query in its own document, Nq != Nk", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 30 }),
      fc.integer({ min: 1, max: 30 }),
      lengthsArb,
      (qLen, kvLen, lengths) => {
        const doc = docOf(lengths);
        const pos = (i: number) => i + kvLen - qLen;
        const m = and(causal(), documents(lengths));
        const allowed = (_b: number, _h: number, i: number, j: number) =>
          doc(pos(i)) !== -1 && doc(pos(i)) === doc(j) && j <= pos(i);
        assertMatches(m, allowed, { qLen, kvLen });
        assertSoundLayout(m, { qLen, kvLen }, 3, 2);
      },
    ),
  );
  const counts = assertSoundLayout(documents([16, 16]), { qLen: 32, kvLen: 32 }, 8, 8);
  assertEquals(counts, { empty: 8, partial: 0, full: 8 });
});

Deno.test("documents() with one list per batch element uses list b", () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 25 }),
    fc.integer({ min: 1, max: 25 }),
    fc.array(lengthsArb, { minLength: 1, maxLength: 3 }),
    (qLen, kvLen, lists) => {
      const docs = lists.map(docOf);
      const pos = (i: number) => i + kvLen - qLen;
      const s = { qLen, kvLen, batch: lists.length + 1 }; // one element past the lists
      const allowed = (b: number, _h: number, i: number, j: number) =>
        b < lists.length && docs[b](pos(i)) !== -1 && docs[b](pos(i)) === docs[b](j);
      assertMatches(documents(lists), allowed, s);
      assertSoundLayout(documents(lists), s, 4, 4);
    },
  ));
  const one = assertSoundLayout(documents([[8, 8]]), { qLen: 16, kvLen: 16, batch: 1 }, 8, 8);
  assert(one.full === 2 && one.empty === 2, JSON.stringify(one));
});

Deno.test("documents() refuses empty lists and non-positive lengths by name", () => {
  assertThrows(() => documents([[2], []]), RangeError, "lengths[1] must be non-empty");
  assertThrows(
    () => documents([3, 0]),
    RangeError,
    "lengths[1] must be an integer in 1..1073741824, current value is 0",
  );
  assertThrows(
    () => documents([[2], 3] as never),
    TypeError,
    "lengths[1] must be an array of integers, current value is 3",
  );
});
