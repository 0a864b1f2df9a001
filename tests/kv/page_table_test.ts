import { assert, assertEquals, assertThrows } from "@std/assert";
import { OutOfBlocksError } from "../../core/errors.ts";
import { NO_BLOCK, PageTable, prefixHashes } from "../../kv/mod.ts";
import { assertConsistent, Sim, snapshot } from "./_sim.ts";

const geometry = { kvHeads: 2, headDim: 8 };
const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

Deno.test("append() gives consecutive slots across blocks of any size", () => {
  for (const blockSize of [1, 3, 8, 24]) {
    const table = new PageTable({ numBlocks: 16, blockSize, ...geometry });
    const s = table.create();
    const plan = table.append(s, range(0, 2 * blockSize + 1));
    assertEquals([...plan.slots], range(0, 2 * blockSize + 1));
    assertEquals([plan.start, plan.cached, plan.copies, plan.loads], [0, 0, [], []]);
    assertEquals(plan.filled.map((f) => f.block), blockSize === 1 ? [0, 1, 2] : [0, 1]);
    assertEquals([...table.append(s, [7]).slots], [2 * blockSize + 1]);
    assertConsistent(table);
  }
});

Deno.test("fork() shares blocks; a write to a shared partial block copies it first", () => {
  const table = new PageTable({ numBlocks: 8, blockSize: 4, ...geometry });
  const sim = new Sim(table);
  const a = table.create();
  sim.append(table.append(a, [1, 2, 3, 4, 5, 6]), [1, 2, 3, 4, 5, 6]);
  const b = table.fork(a);
  assertEquals(table.stats().shared, 2);
  const plan = table.append(b, [9]);
  assertEquals(plan.copies, [{ from: 1, to: 2 }]);
  sim.append(plan, [1, 2, 3, 4, 5, 6, 9]);
  // The parent's partial block is its own again: no copy.
  const again = table.append(a, [8]);
  assertEquals([again.copies, [...again.slots]], [[], [1 * 4 + 2]]);
  sim.append(again, [1, 2, 3, 4, 5, 6, 8]);
  assertEquals([[...table.blockTable(a)], [...table.blockTable(b)]], [[0, 1], [0, 2]]);
  sim.verify();
  assertConsistent(table);
});

Deno.test("a full shared block is never copied; appending after it takes a new block", () => {
  const table = new PageTable({ numBlocks: 8, blockSize: 2, ...geometry });
  const a = table.create();
  table.append(a, [1, 2]);
  const b = table.fork(a);
  const plan = table.append(b, [3]);
  assertEquals([plan.copies, [...plan.slots]], [[], [2]]);
  assertConsistent(table);
});

Deno.test("prefix cache: a new sequence reuses whole matching blocks, never the last token", () => {
  const table = new PageTable({ numBlocks: 8, blockSize: 2, ...geometry });
  const a = table.create();
  table.append(a, [1, 2, 3, 4, 5]);
  const b = table.create();
  const hit = table.append(b, [1, 2, 3, 4, 6]);
  assertEquals([hit.cached, [...hit.slots]], [4, [3 * 2]]);
  assertEquals([...table.blockTable(b)], [0, 1, 3]);
  // Same tokens, different prefix: no hit for the second block.
  const c = table.create();
  assertEquals(table.append(c, [9, 9, 3, 4, 1]).cached, 0);
  // A prompt of exactly two blocks reuses only the first: its last token is computed.
  const d = table.create();
  const exact = table.append(d, [1, 2, 3, 4]);
  assertEquals([exact.cached, exact.slots.length, exact.filled], [2, 2, []]);
  assertConsistent(table);
});

Deno.test("prefix cache: a salt or prefixCaching: false keeps tables apart", () => {
  const off = new PageTable({ numBlocks: 8, blockSize: 2, ...geometry, prefixCaching: false });
  off.append(off.create(), [1, 2, 3]);
  const plan = off.append(off.create(), [1, 2, 3]);
  assertEquals([plan.cached, plan.filled], [0, []]);
  const salted = new PageTable({ numBlocks: 8, blockSize: 2, ...geometry, salt: "model-b" });
  const filled = salted.append(salted.create(), [1, 2, 3]).filled;
  assertEquals(filled[0].hash, prefixHashes([1, 2], { blockSize: 2, salt: "model-b" })[0]);
  assert(filled[0].hash !== prefixHashes([1, 2], { blockSize: 2 })[0]);
  assertEquals(filled[0].key, `prefix/${filled[0].hash}`);
});

Deno.test("freed cached blocks are evicted least recently used first, tails before heads", () => {
  const table = new PageTable({ numBlocks: 5, blockSize: 1, ...geometry });
  const a = table.create();
  table.append(a, [1, 2, 3, 4]);
  table.free(a);
  assertEquals([table.stats().cached, table.stats().free], [4, 1]);
  // Reusing the head [1] revives block 0; the 3-token prompt's other two blocks take the free
  // one and evict the least recently used cached one, the tail (block 3).
  const b = table.create();
  const plan = table.append(b, [1, 7, 8]);
  assertEquals([plan.cached, [...plan.slots]], [1, [4, 3]]);
  assertEquals(table.stats().cached, 2);
  const c = table.create();
  assertEquals(table.append(c, [1, 2, 5]).cached, 2);
  assertConsistent(table);
});

Deno.test("OutOfBlocksError leaves the table exactly as it was", () => {
  const table = new PageTable({ numBlocks: 3, blockSize: 2, ...geometry });
  const a = table.create();
  table.append(a, [1, 2, 3]);
  const b = table.fork(a);
  const before = snapshot(table);
  const error = assertThrows(() => table.append(b, [4, 5, 6, 7, 8]), OutOfBlocksError);
  assertEquals(error.message, "Cannot allocate KV blocks: needed 3, current free count is 1");
  assertEquals(snapshot(table), before);
  table.append(b, [4]); // the copy-on-write fits
  table.append(a, [9]); // fills a's own partial block
  const full = snapshot(table);
  assertThrows(() => table.append(a, [10]), OutOfBlocksError);
  assertEquals(snapshot(table), full);
  assertConsistent(table);
});

Deno.test("sliding window: blocks no later query reads go back to the pool", () => {
  const table = new PageTable({ numBlocks: 4, blockSize: 2, ...geometry, window: 3 });
  const sim = new Sim(table);
  const s = table.create();
  const tokens: number[] = [];
  for (let t = 0; t < 40; t++) {
    tokens.push(t);
    sim.append(table.append(s, [t]), tokens);
    sim.verify();
    assertConsistent(table);
    assert(table.stats().used <= 3, `window 3 holds at most 3 blocks of 2, at ${t}`);
  }
  assertEquals(table.blockTable(s).length, 20);
  assertEquals([...table.blockTable(s)].filter((b) => b !== NO_BLOCK).length, 2);
});

Deno.test("sliding window with sinks keeps the first blocks (StreamingLLM)", () => {
  const table = new PageTable({ numBlocks: 5, blockSize: 2, ...geometry, window: 2, sinks: 3 });
  const sim = new Sim(table);
  const s = table.create();
  const tokens = range(0, 6);
  sim.append(table.append(s, tokens), tokens);
  for (let t = 6; t < 60; t++) {
    tokens.push(t);
    sim.append(table.append(s, [t]), tokens);
    sim.verify();
  }
  const blocks = [...table.blockTable(s)];
  assertEquals(blocks.slice(0, 2).includes(NO_BLOCK), false);
  assert(blocks.filter((b) => b !== NO_BLOCK).length <= 4);
  assertConsistent(table);
});

Deno.test("prefix cache with a window needs only the blocks inside the window", () => {
  const writer = new PageTable({ numBlocks: 12, blockSize: 2, ...geometry });
  const sim = new Sim(writer);
  const prompt = range(10, 20);
  sim.append(writer.append(writer.create(), prompt), prompt);
  const hashes = prefixHashes(prompt, { blockSize: 2 });
  const reader = new PageTable({ numBlocks: 12, blockSize: 2, ...geometry, window: 3 });
  const next = [...prompt.slice(0, 9), 99];
  // The first computed query (position 8) sees keys 6..8: of the cached blocks, only block 3.
  const plan = reader.append(reader.create(), next, { stored: new Set([hashes[3]]) });
  assertEquals([plan.cached, plan.loads.map((l) => l.key)], [8, [`prefix/${hashes[3]}`]]);
  assertEquals([...reader.blockTable(0)].slice(0, 3), [NO_BLOCK, NO_BLOCK, NO_BLOCK]);
  const other = new Sim(reader);
  for (const [k, v] of sim.store) other.store.set(k, v);
  other.append(plan, next);
  other.verify();
  // Without block 3, three blocks hit: the query at 6 needs block 2 only.
  const fresh = new PageTable({ numBlocks: 12, blockSize: 2, ...geometry, window: 3 });
  const fewer = fresh.append(fresh.create(), next, {
    stored: new Set(hashes.slice(0, 3)),
  });
  assertEquals(fewer.cached, 6);
  assertConsistent(reader);
});

Deno.test("swap out and in: the sequence reads the same values; cached blocks come back shared", () => {
  const table = new PageTable({ numBlocks: 5, blockSize: 2, ...geometry });
  const sim = new Sim(table);
  const a = table.create();
  const tokens = [1, 2, 3, 4, 5];
  sim.append(table.append(a, tokens), tokens);
  const out = table.swapOut(a);
  assertEquals(out.saves.map((x) => x.key.split("/")[0]), ["prefix", "prefix", "swap"]);
  sim.swapOut(out);
  assertEquals([table.stats().used, table.stats().swapped], [0, 1]);
  assertThrows(() => table.append(a, [1]), RangeError, "current value is 0 (swapped out)");
  // Another sequence takes the free blocks and evicts a's second cached block.
  const b = table.create();
  const sevens = [7, 7, 7, 7, 7, 7, 7];
  sim.append(table.append(b, sevens), sevens);
  table.free(b);
  const back = table.swapIn(a);
  assertEquals(back.loads.map((l) => l.key), out.saves.slice(1).map((s) => s.key));
  assertEquals(back.drop, [out.saves[2].key]);
  sim.swapIn(back);
  sim.verify();
  assertEquals(sim.store.size, 5); // a's two prefix pages, b's three; the swap page dropped
  assertConsistent(table);
});

Deno.test("free() of a swapped-out sequence returns its single-use keys; nothing leaks", () => {
  const table = new PageTable({ numBlocks: 4, blockSize: 2, ...geometry });
  const a = table.create();
  table.append(a, [1, 2, 3]);
  const b = table.fork(a);
  const out = table.swapOut(a);
  assertEquals(table.free(a), [out.saves[1].key]);
  table.free(b);
  assertEquals([table.stats().used, table.stats().cached, table.stats().free], [0, 1, 3]);
  assertEquals(table.evict(), 1);
  assertEquals(table.stats().free, 4);
});

Deno.test("stats() counts waste, bytes and shared blocks", () => {
  const table = new PageTable({
    numBlocks: 10,
    blockSize: 4,
    kvHeads: 2,
    headDim: 8,
    dtype: "f16",
    layers: 3,
  });
  const a = table.create();
  table.append(a, [1, 2, 3, 4, 5]);
  table.fork(a);
  const stats = table.stats();
  assertEquals(stats.blockBytes, 2 * 3 * 4 * 2 * 8 * 2);
  assertEquals([stats.used, stats.shared, stats.tokens, stats.waste], [2, 2, 5, 3]);
  assertEquals(stats.usedBytes, 2 * stats.blockBytes);
  assertEquals(stats.wasteBytes, 3 * stats.blockBytes / 4);
  assertEquals([stats.sequences, stats.totalBytes], [2, 10 * stats.blockBytes]);
});

Deno.test("batchTables() pads with NO_BLOCK and gives lengths", () => {
  const table = new PageTable({ numBlocks: 8, blockSize: 2, ...geometry });
  const a = table.create(), b = table.create(), c = table.create();
  table.append(a, [1, 2, 3, 4, 5]), table.append(b, [6]);
  const batch = table.batchTables([b, a, c]);
  assertEquals(batch.maxBlocks, 3);
  assertEquals([...batch.tables], [3, -1, -1, 0, 1, 2, -1, -1, -1]);
  assertEquals([...batch.lengths], [1, 5, 0]);
  assertEquals(table.batchTables([]).tables.length, 0);
});

Deno.test("appends reuse prefix blocks a page store holds (stored), as loads", () => {
  const writer = new PageTable({ numBlocks: 8, blockSize: 2, ...geometry, salt: "m" });
  const sim = new Sim(writer);
  const tokens = [4, 5, 6, 7, 8];
  sim.append(writer.append(writer.create(), tokens), tokens);
  // Another table (another process) with the same salt: ask the store, then append.
  const reader = new PageTable({ numBlocks: 8, blockSize: 2, ...geometry, salt: "m" });
  const stored = new Set(
    prefixHashes(tokens, { blockSize: 2, salt: "m" }).filter((h) => sim.store.has(`prefix/${h}`)),
  );
  const plan = reader.append(reader.create(), tokens, { stored });
  assertEquals(plan.cached, 4);
  assertEquals(plan.loads.map((l) => l.key), [...stored].map((h) => `prefix/${h}`));
  const other = new Sim(reader);
  for (const [k, v] of sim.store) other.store.set(k, v);
  other.append(plan, tokens);
  other.verify();
  // Now cached in the reader's pool: the next prompt shares them without loads.
  const again = reader.append(reader.create(), tokens, { stored });
  assertEquals([again.cached, again.loads], [4, []]);
  assertConsistent(reader);
});
