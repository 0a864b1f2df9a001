import { assertEquals, assertRejects } from "@std/assert";
import { MemoryPageStore } from "../../kv/mod.ts";

Deno.test("MemoryPageStore keeps copies and counts bytes", async () => {
  const store = new MemoryPageStore();
  const page = new Uint8Array([1, 2, 3, 4]);
  await store.put("prefix/a", page);
  page[0] = 9;
  const read = (await store.get("prefix/a"))!;
  assertEquals(read, new Uint8Array([1, 2, 3, 4]));
  read[1] = 9;
  assertEquals(await store.get("prefix/a"), new Uint8Array([1, 2, 3, 4]));
  await store.put("prefix/a", new Uint8Array(10));
  await store.put("swap/t/0/0", new Uint8Array(0));
  assertEquals([store.size, store.bytes], [2, 10]);
  assertEquals(await store.has("swap/t/0/0"), true);
  await store.delete("prefix/a");
  await store.delete("prefix/missing");
  assertEquals([store.size, store.bytes, await store.get("prefix/a")], [1, 0, undefined]);
});

Deno.test("MemoryPageStore refuses bad keys and payloads", async () => {
  const store = new MemoryPageStore();
  await assertRejects(
    () => store.put("", new Uint8Array(1)),
    RangeError,
    "key must be a non-empty",
  );
  await assertRejects(() => store.get(7 as never), TypeError, "key must be a non-empty string");
  await assertRejects(() => store.has("x".repeat(1025)), RangeError, "at most 1024 characters");
  await assertRejects(
    () => store.put("k", [1, 2] as never),
    TypeError,
    "bytes must be a Uint8Array, current value is [1, 2]",
  );
  assertEquals(store.size, 0);
});
