import fc from "fast-check";
import { assertEquals, assertNotEquals, assertThrows } from "@std/assert";
import { prefixHashes } from "../../kv/mod.ts";

Deno.test("prefixHashes() of a prefix is a prefix of the hashes; a changed token changes every later hash", () => {
  fc.assert(fc.property(
    fc.array(fc.nat(1000), { maxLength: 40 }),
    fc.integer({ min: 1, max: 6 }),
    fc.nat(40),
    (tokens, blockSize, cut) => {
      const all = prefixHashes(tokens, { blockSize });
      assertEquals(all.length, Math.floor(tokens.length / blockSize));
      assertEquals(
        prefixHashes(tokens.slice(0, cut), { blockSize }),
        all.slice(0, Math.floor(Math.min(cut, tokens.length) / blockSize)),
      );
      if (cut < tokens.length) {
        const changed = tokens.with(cut, tokens[cut] + 1);
        const other = prefixHashes(changed, { blockSize });
        const first = Math.floor(cut / blockSize);
        for (let j = 0; j < all.length; j++) {
          if (j < first) assertEquals(other[j], all[j]);
          else assertNotEquals(other[j], all[j]);
        }
      }
    },
  ));
});

Deno.test("prefixHashes() tells tokens past 2^32 apart and depends on the salt", () => {
  const a = prefixHashes([2 ** 32 + 1], { blockSize: 1 });
  assertNotEquals(a, prefixHashes([1], { blockSize: 1 }));
  assertNotEquals(
    prefixHashes([1], { blockSize: 1, salt: "x" }),
    prefixHashes([1], { blockSize: 1 }),
  );
  assertEquals(
    prefixHashes(new Int32Array([1, 2]), { blockSize: 2 }),
    prefixHashes([1, 2], { blockSize: 2 }),
  );
  assertEquals(a[0].length, 32);
});

Deno.test("prefixHashes() refuses bad tokens and options", () => {
  assertThrows(
    () => prefixHashes([1.5], { blockSize: 1 }),
    RangeError,
    "tokens[0] must be a non-negative integer, current value is 1.5",
  );
  assertThrows(
    () => prefixHashes(new BigInt64Array(1) as never, { blockSize: 1 }),
    TypeError,
    "tokens must be an array of token ids",
  );
  assertThrows(
    () => prefixHashes([1], { blockSize: 0 }),
    RangeError,
    "options.blockSize must be an integer in 1..1073741824, current value is 0",
  );
  assertThrows(
    () => prefixHashes([1], { blockSize: 1, salt: 3 as never }),
    TypeError,
    "options.salt must be a string",
  );
});
