import { assert, assertEquals, assertRejects } from "@std/assert";
import { DenoKvPageStore, PageTable, prefixHashes } from "../../kv/mod.ts";
import { pagePayload, PROMPT, SALT, TABLE } from "./_pages.ts";

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => i * seed);

async function chunkKeys(store: DenoKvPageStore): Promise<number> {
  let n = 0;
  for await (const _ of store.kv.list({ prefix: [store.namespace, "data"] })) n++;
  return n;
}

Deno.test("DenoKvPageStore round-trips payloads of any size, chunked", async () => {
  const store = await DenoKvPageStore.open(":memory:", { chunkBytes: 1000 });
  for (const n of [0, 1, 999, 1000, 1001, 12_345, 2_000_000]) {
    await store.put(`prefix/${n}`, bytes(n, 3));
    assertEquals(await store.get(`prefix/${n}`), bytes(n, 3), `${n} bytes`);
    assertEquals(await store.has(`prefix/${n}`), true);
  }
  store.close();
});

Deno.test("DenoKvPageStore splits a payload across atomics past Deno KV's 1000 mutations", async () => {
  const store = await DenoKvPageStore.open(":memory:", { chunkBytes: 10 });
  const page = bytes(25_000, 5); // 2500 chunks: three commits
  await store.put("swap/t/1/2", page);
  assertEquals(await store.get("swap/t/1/2"), page);
  assertEquals(await chunkKeys(store), 2500);
  await store.delete("swap/t/1/2");
  assertEquals([await store.get("swap/t/1/2"), await chunkKeys(store)], [undefined, 0]);
  store.close();
});

Deno.test("DenoKvPageStore replaces a page whole and removes the old chunks", async () => {
  const store = await DenoKvPageStore.open(":memory:", { chunkBytes: 4096 });
  await store.put("prefix/x", bytes(200_000, 1));
  await store.put("prefix/x", bytes(10_000, 2));
  assertEquals(await store.get("prefix/x"), bytes(10_000, 2));
  assertEquals(await chunkKeys(store), 3);
  await store.delete("prefix/missing");
  store.close();
});

Deno.test("DenoKvPageStore readers see the old page or the new one, never a mix", async () => {
  const store = await DenoKvPageStore.open(":memory:", { chunkBytes: 100 });
  const old = new Uint8Array(150_000).fill(1), fresh = new Uint8Array(150_000).fill(2);
  await store.put("prefix/p", old);
  let writing = true;
  const writer = (async () => {
    for (let i = 0; i < 6; i++) await store.put("prefix/p", i % 2 ? old : fresh);
    writing = false;
  })();
  let reads = 0;
  while (writing) {
    const page = (await store.get("prefix/p"))!;
    assert(page.every((x) => x === page[0]), "a read mixed two pages");
    reads++;
  }
  await writer;
  assert(reads > 0);
  store.close();
});

Deno.test("DenoKvPageStore refuses bad keys, payloads and options", async () => {
  const store = await DenoKvPageStore.open(":memory:");
  await assertRejects(() => store.put("", new Uint8Array(1)), RangeError, "key must be");
  await assertRejects(() => store.put("k", "x" as never), TypeError, "bytes must be a Uint8Array");
  await assertRejects(
    () => DenoKvPageStore.open(":memory:", { chunkBytes: 70_000 }),
    RangeError,
    "options.chunkBytes must be an integer in 1..65536, current value is 70000",
  );
  store.close();
});

/** This Deno, by its path, or "deno" as found on PATH (what `--allow-run=deno` grants). */
async function denoCommand(): Promise<string | undefined> {
  if ((await Deno.permissions.query({ name: "write" })).state !== "granted") return undefined;
  for (const command of [Deno.execPath(), "deno"]) {
    if ((await Deno.permissions.query({ name: "run", command })).state === "granted") {
      return command;
    }
  }
  return undefined;
}
const deno = await denoCommand();
if (deno === undefined) {
  console.warn(
    "two-process Deno KV test skipped: it needs --allow-write and --allow-run=deno (deno task test grants both)",
  );
}

Deno.test({
  name: "a Deno KV store written by one process gives another the same prefix blocks",
  ignore: deno === undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "attend-kv-" });
    const path = `${dir}/pages.sqlite3`;
    try {
      const writer = new URL("./_write_pages.ts", import.meta.url);
      const out = await new Deno.Command(deno!, {
        args: [
          "run",
          "--unstable-kv",
          `--allow-read=${dir}`,
          `--allow-write=${dir}`,
          writer.href,
          path,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assertEquals(out.code, 0, stderr);
      const written: string[] = JSON.parse(new TextDecoder().decode(out.stdout));
      assertEquals(written.length, 3);

      // This process: same salt and block size, an empty pool; ask the store, then append.
      const store = await DenoKvPageStore.open(path);
      const prompt = [...PROMPT.slice(0, 12), 42];
      const hashes = prefixHashes(prompt, { blockSize: TABLE.blockSize, salt: SALT });
      const stored = new Set<string>();
      for (const h of hashes) if (await store.has(`prefix/${h}`)) stored.add(h);
      const table = new PageTable({ ...TABLE, salt: SALT });
      const plan = table.append(table.create(), prompt, { stored });
      assertEquals(plan.cached, 12);
      assertEquals(plan.loads.map((l) => l.key), written);
      for (const { key } of plan.loads) assertEquals(await store.get(key), pagePayload(key));
      store.close();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
