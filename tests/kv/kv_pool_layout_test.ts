import { assertEquals, assertThrows } from "@std/assert";
import { broadcast, permute, tensorDesc } from "../../core/tensor_desc.ts";
import { assertKvRows, kvPoolLayout } from "../../kv/mod.ts";

Deno.test("kvPoolLayout() gives byte sizes and is frozen", () => {
  const layout = kvPoolLayout({ numBlocks: 5, blockSize: 3, kvHeads: 2, headDim: 24, layers: 4 });
  assertEquals([layout.dtype, layout.tokenBytes, layout.blockBytes], ["f32", 192, 2 * 4 * 3 * 192]);
  assertEquals(Object.isFrozen(layout), true);
  assertThrows(
    () => kvPoolLayout({ numBlocks: 5, blockSize: 3, kvHeads: 2, headDim: 24, layers: 0 }),
    RangeError,
    "layers must be an integer in 1..1073741824, current value is 0",
  );
});

Deno.test("assertKvRows() accepts strided views and refuses other shapes", () => {
  const layout = kvPoolLayout({ numBlocks: 4, blockSize: 2, kvHeads: 2, headDim: 8, dtype: "f16" });
  // [1, tokens, heads, dim] permuted to [1, heads, tokens, dim]: a view, no copy.
  const k = permute(tensorDesc([1, 5, 2, 8], "f16"), [0, 2, 1, 3]);
  assertKvRows(layout, k, broadcast(tensorDesc([1, 1, 5, 8], "f16"), [1, 2, 5, 8]), 5);
  assertThrows(
    () => assertKvRows(layout, k, k, 4),
    RangeError,
    "k.shape[2] must be 4 (tokens), current value is 5",
  );
  assertThrows(
    () => assertKvRows(layout, k, tensorDesc([1, 2, 5, 8]), 5),
    TypeError,
    'v.dtype must be "f16" (the pool\'s), current value is "f32"',
  );
  assertThrows(
    () => assertKvRows(layout, k, tensorDesc([2, 2, 5, 8], "f16"), 5),
    RangeError,
    "v.shape[0] must be 1 (batch), current value is 2",
  );
});
