import { assertEquals } from "@std/assert";
import { unfilter } from "./_png_decode.ts";

/** Filters a line the way an encoder would, so that unfilter() must invert it. */
function filter(type: number, line: Uint8Array, prior: Uint8Array, bpp: number): Uint8Array {
  const out = new Uint8Array(line.length);
  for (let x = 0; x < line.length; x++) {
    const a = x >= bpp ? line[x - bpp] : 0;
    const [b, c] = [prior[x], x >= bpp ? prior[x - bpp] : 0];
    const p = a + b - c;
    const nearest = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c)
      ? a
      : Math.abs(p - b) <= Math.abs(p - c)
      ? b
      : c;
    out[x] = line[x] - [0, a, b, Math.floor((a + b) / 2), nearest][type];
  }
  return out;
}

Deno.test("unfilter() inverts all five PNG filter types", () => {
  const bpp = 4;
  const lines = Array.from(
    { length: 6 },
    (_, y) => Uint8Array.from({ length: 40 }, (_, x) => (x * 37 + y * 101 + x * y * 13) % 256),
  );
  for (let type = 0; type < 5; type++) {
    let prior = new Uint8Array(40);
    for (const line of lines) {
      const got = filter(type, line, prior, bpp);
      unfilter(type, got, prior, bpp);
      assertEquals(got, line, `filter type ${type}`);
      prior = line;
    }
  }
});
