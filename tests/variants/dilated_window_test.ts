import fc from "fast-check";
import { assertEquals, assertThrows } from "@std/assert";
import { attention, lower, mask, tensorDesc } from "../../core/mod.ts";
import { cpuCaps } from "../../backends/cpu/mod.ts";
import { dilatedWindow, slidingWindow } from "../../variants/mod.ts";
import { assertMatches, assertSoundLayout, matrix } from "./_masks.ts";

Deno.test("dilatedWindow() sees size keys spaced dilation apart, itself included", () => {
  assertEquals(matrix(dilatedWindow({ size: 2, dilation: 2 }), 5, 5), [
    "1 0 0 0 0",
    "0 1 0 0 0",
    "1 0 1 0 0",
    "0 1 0 1 0",
    "0 0 1 0 1",
  ]);
});

Deno.test("dilatedWindow() with dilation 1 is slidingWindow()", () => {
  assertEquals(
    matrix(dilatedWindow({ size: 3, dilation: 1 }), 7, 9),
    matrix(slidingWindow(3), 7, 9),
  );
});

Deno.test("dilatedWindow() matches the definition for random sizes, scalar and per head", () => {
  const value = fc.integer({ min: 1, max: 6 });
  const perHead = fc.oneof(value, fc.array(value, { minLength: 3, maxLength: 3 }));
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 30 }),
    fc.integer({ min: 1, max: 30 }),
    perHead,
    perHead,
    (qLen, kvLen, size, dilation) => {
      const at = (x: number | number[], h: number) => Array.isArray(x) ? x[h] : x;
      const pos = (i: number) => i + kvLen - qLen;
      const allowed = (_b: number, h: number, i: number, j: number) => {
        for (let k = 0; k < at(size, h); k++) if (j === pos(i) - k * at(dilation, h)) return true;
        return false;
      };
      const s = { qLen, kvLen, heads: 3 };
      const m = dilatedWindow({ size, dilation });
      assertMatches(m, allowed, s);
      assertSoundLayout(m, s, 2, 3);
    },
  ));
});

Deno.test("dilatedWindow() refuses per-head lists of different lengths, and lower() another head count", () => {
  assertThrows(
    () => dilatedWindow({ size: [1, 2], dilation: [1, 2, 3] }),
    RangeError,
    "options.dilation.length must be options.size.length (2), current value is 3",
  );
  const x = tensorDesc([1, 2, 8, 8]);
  assertThrows(
    () => lower(mask(dilatedWindow({ size: 2, dilation: [1, 2, 3] }))(attention(x, x, x)), cpuCaps),
    RangeError,
    "headParam values.length must be q heads (2)",
  );
});
