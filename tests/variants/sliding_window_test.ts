import fc from "fast-check";
import { assert, assertEquals, assertThrows } from "@std/assert";
import { attention, lower, mask, tensorDesc } from "../../core/mod.ts";
import { cpuCaps } from "../../backends/cpu/mod.ts";
import { slidingWindow } from "../../variants/mod.ts";
import { assertMatches, assertSoundLayout, matrix } from "./_masks.ts";

const sizes = fc.record({
  qLen: fc.integer({ min: 1, max: 30 }),
  kvLen: fc.integer({ min: 1, max: 30 }),
});

Deno.test("slidingWindow() hides future keys and keys older than the window", () => {
  assertEquals(matrix(slidingWindow(2), 4, 4), ["1 0 0 0", "1 1 0 0", "0 1 1 0", "0 0 1 1"]);
  assertEquals(matrix(slidingWindow(2), 2, 4), ["0 1 1 0", "0 0 1 1"]);
});

Deno.test("slidingWindow(size) sees pos(i) - size < j <= pos(i), bottom-right aligned", () => {
  fc.assert(fc.property(sizes, fc.integer({ min: 1, max: 40 }), ({ qLen, kvLen }, size) => {
    const pos = (i: number) => i + kvLen - qLen;
    assertMatches(slidingWindow(size), (_b, _h, i, j) => j <= pos(i) && j > pos(i) - size, {
      qLen,
      kvLen,
    });
  }));
});

Deno.test("slidingWindow([…]) gives each query head its own window", () => {
  assertEquals(matrix(slidingWindow([1, 3]), 4, 4, 0, 1), [
    "1 0 0 0",
    "1 1 0 0",
    "1 1 1 0",
    "0 1 1 1",
  ]);
  fc.assert(fc.property(
    sizes,
    fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 4 }),
    ({ qLen, kvLen }, windows) => {
      const pos = (i: number) => i + kvLen - qLen;
      assertMatches(
        slidingWindow(windows),
        (_b, h, i, j) => j <= pos(i) && j > pos(i) - windows[h],
        { qLen, kvLen, heads: windows.length },
      );
    },
  ));
});

Deno.test("slidingWindow() tiles classified full or empty are so, and inner tiles are full", () => {
  fc.assert(fc.property(
    sizes,
    fc.oneof(
      fc.integer({ min: 1, max: 40 }),
      fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 3 }),
    ),
    fc.integer({ min: 1, max: 8 }),
    fc.integer({ min: 1, max: 8 }),
    ({ qLen, kvLen }, size, tq, tk) => {
      const heads = Array.isArray(size) ? size.length : 1;
      assertSoundLayout(slidingWindow(size), { qLen, kvLen, heads }, tq, tk);
    },
  ));
  const counts = assertSoundLayout(slidingWindow(16), { qLen: 64, kvLen: 64 }, 4, 4);
  assert(counts.full > 0 && counts.empty > 0, JSON.stringify(counts));
});

Deno.test("lower() refuses per-head windows for another head count", () => {
  const x = tensorDesc([1, 2, 8, 8]);
  assertThrows(
    () => lower(mask(slidingWindow([1, 2, 3]))(attention(x, x, x)), cpuCaps),
    RangeError,
    "headParam values.length must be q heads (2)",
  );
});
