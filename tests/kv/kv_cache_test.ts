/**
 * The KV cache with storage: a random history of appends, forks and frees on a small pool, each
 * step's paged attention compared with contiguous attention over a plain array model of every
 * sequence's K/V; swaps through the memory store give bit-identical results; prefix blocks
 * persisted by one cache are loaded by another.
 * @module
 */
import fc from "fast-check";
import { assertEquals, assertLessOrEqual } from "@std/assert";
import {
  attend,
  type Backend,
  or,
  pagedAttend,
  sinks as sinksMask,
  slidingWindow,
} from "../../mod.ts";
import { createCpuBackend } from "../../backends/cpu/mod.ts";
import { KvCache, MemoryPageStore } from "../../kv/mod.ts";
import { maxAbsError } from "../_oracle.ts";
import { randomData } from "../_arbitraries.ts";
import { gpu } from "../_webgpu.ts";

const KV_HEADS = 2, HEADS = 4, DIM = 8;

type Op = { kind: "append"; seq: number; n: number } | { kind: "fork"; seq: number } | {
  kind: "free";
  seq: number;
};

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("append" as const),
      seq: fc.nat(5),
      n: fc.integer({ min: 1, max: 9 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("fork" as const), seq: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("free" as const), seq: fc.nat(5) }) },
);

/** Per-token K or V rows `[KV_HEADS, DIM]`, a token's values fixed by its id and position. */
function rowsOf(tokens: readonly number[], salt: number): Float32Array {
  const out = new Float32Array(KV_HEADS * tokens.length * DIM);
  tokens.forEach((t, j) => {
    const r = randomData(KV_HEADS * DIM, 1000 * t + j + salt);
    for (let h = 0; h < KV_HEADS; h++) {
      out.set(r.subarray(h * DIM, (h + 1) * DIM), (h * tokens.length + j) * DIM);
    }
  });
  return out;
}

async function history(backend: Backend, ops: readonly Op[], blockSize: number): Promise<void> {
  const store = new MemoryPageStore();
  const cache = new KvCache(backend, {
    numBlocks: 40,
    blockSize,
    kvHeads: KV_HEADS,
    headDim: DIM,
    store,
  });
  const model = new Map<number, number[]>();
  for (const op of ops) {
    const ids = [...model.keys()];
    if (op.kind === "append") {
      const seq = ids.length && op.seq % 2 ? ids[op.seq % ids.length] : cache.create();
      const tokens = Array.from({ length: op.n }, (_, i) => (op.seq + i) % 4);
      const before = model.get(seq) ?? [];
      const all = [...before, ...tokens];
      const k = backend.tensor(rowsOf(all, 0).slice(), [1, KV_HEADS, all.length, DIM]);
      const v = backend.tensor(rowsOf(all, 1), [1, KV_HEADS, all.length, DIM]);
      // Only the new tokens' rows are appended: slice them off the whole history's.
      const newK = backend.tensor(sliceTokens(rowsOf(all, 0), all.length, before.length), [
        1,
        KV_HEADS,
        op.n,
        DIM,
      ]);
      const newV = backend.tensor(sliceTokens(rowsOf(all, 1), all.length, before.length), [
        1,
        KV_HEADS,
        op.n,
        DIM,
      ]);
      try {
        await cache.append(seq, tokens, [{ k: newK, v: newV }]);
      } catch (e) {
        if ((e as Error).name !== "OutOfBlocksError") throw e;
        continue;
      }
      model.set(seq, all);
      // Paged attention of the new tokens equals contiguous attention over the model's rows.
      const q = backend.tensor(randomData(HEADS * op.n * DIM, op.n + all.length), [
        1,
        HEADS,
        op.n,
        DIM,
      ]);
      const paged = await pagedAttend(backend, q, cache, [seq], { causal: true });
      const plain = await attend(backend, q, k, v, { causal: true });
      const [a, b] = await backend.readMany([paged.out, plain.out]);
      assertLessOrEqual(maxAbsError(a, b), 1e-5);
      for (const t of [k, v, newK, newV, q, paged.out, plain.out]) backend.release(t);
    } else if (op.kind === "fork" && ids.length) {
      const parent = ids[op.seq % ids.length];
      model.set(cache.fork(parent), [...model.get(parent)!]);
    } else if (op.kind === "free" && ids.length) {
      const seq = ids[op.seq % ids.length];
      await cache.free(seq);
      model.delete(seq);
    }
  }
  for (const seq of model.keys()) await cache.free(seq);
  assertEquals(cache.table.stats().used, 0);
  cache.dispose();
}

function sliceTokens(rows: Float32Array, total: number, from: number): Float32Array {
  const out = new Float32Array(KV_HEADS * (total - from) * DIM);
  for (let h = 0; h < KV_HEADS; h++) {
    out.set(
      rows.subarray((h * total + from) * DIM, (h + 1) * total * DIM),
      h * (total - from) * DIM,
    );
  }
  return out;
}

Deno.test("KvCache histories: paged attention equals contiguous attention at every append", async () => {
  const cpu = createCpuBackend();
  await fc.assert(
    fc.asyncProperty(
      fc.array(opArb, { maxLength: 14 }),
      fc.constantFrom(1, 3, 4, 8),
      (ops, bs) => history(cpu, ops, bs),
    ),
    { numRuns: 25 },
  );
  cpu.dispose();
});

Deno.test({
  name: "KvCache on WebGPU: paged attention equals contiguous attention at every append",
  ignore: gpu === undefined,
  fn: async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { maxLength: 8 }),
        fc.constantFrom(1, 4),
        (ops, bs) => history(gpu!, ops, bs),
      ),
      { numRuns: 2 },
    );
  },
});

Deno.test("KvCache swap out and in gives bit-identical attention; a second cache loads persisted prefixes", async () => {
  for (const dtype of ["f32", "f16"] as const) {
    const backend = createCpuBackend();
    const store = new MemoryPageStore();
    const options = {
      numBlocks: 12,
      blockSize: 4,
      kvHeads: KV_HEADS,
      headDim: DIM,
      dtype,
      store,
      salt: "m",
    };
    const cache = new KvCache(backend, options);
    const tokens = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];
    const k = backend.tensor(rowsOf(tokens, 0), [1, KV_HEADS, tokens.length, DIM], dtype);
    const v = backend.tensor(rowsOf(tokens, 1), [1, KV_HEADS, tokens.length, DIM], dtype);
    const seq = cache.create();
    await cache.append(seq, tokens, [{ k, v }]);
    const q = backend.tensor(randomData(HEADS * 2 * DIM, 5), [1, HEADS, 2, DIM], dtype);
    const read = async (c: KvCache, s: number) =>
      await backend.read((await pagedAttend(backend, q, c, [s], { causal: true })).out);
    const before = await read(cache, seq);
    await cache.swapOut(seq);
    assertEquals(cache.table.stats().used, 0);
    await cache.swapIn(seq);
    assertEquals(await read(cache, seq), before);
    // Another cache (think: another process) finds the two full blocks in the store.
    const other = new KvCache(backend, options);
    const copy = other.create();
    const plan = await other.append(copy, tokens, [{ k, v }]);
    assertEquals(plan.cached, 8);
    assertEquals(plan.loads.length, 2);
    assertEquals(await read(other, copy), before);
    cache.dispose(), other.dispose();
    backend.dispose();
  }
});

Deno.test("chunked prefill through the cache in random chunk sizes equals one-shot causal attention", async () => {
  const backend = createCpuBackend();
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 60 }),
      fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 8 }),
      fc.constantFrom(1, 5, 16),
      async (length, chunks, blockSize) => {
        const tokens = Array.from({ length }, (_, i) => (i * 7) % 11);
        const kAll = rowsOf(tokens, 0), vAll = rowsOf(tokens, 1);
        const qAll = randomData(HEADS * length * DIM, length);
        const cache = new KvCache(backend, {
          numBlocks: 64,
          blockSize,
          kvHeads: KV_HEADS,
          headDim: DIM,
        });
        const seq = cache.create();
        const pieces: Float32Array[] = [];
        for (let at = 0, i = 0; at < length; at += chunks[i++ % chunks.length]) {
          const n = Math.min(chunks[i % chunks.length], length - at);
          const rows = (x: Float32Array, width: number, total: number) => {
            const out = new Float32Array(width * n * DIM);
            for (let h = 0; h < width; h++) {
              out.set(x.subarray((h * total + at) * DIM, (h * total + at + n) * DIM), h * n * DIM);
            }
            return out;
          };
          const k = backend.tensor(rows(kAll, KV_HEADS, length), [1, KV_HEADS, n, DIM]);
          const v = backend.tensor(rows(vAll, KV_HEADS, length), [1, KV_HEADS, n, DIM]);
          await cache.append(seq, tokens.slice(at, at + n), [{ k, v }]);
          const q = backend.tensor(rows(qAll, HEADS, length), [1, HEADS, n, DIM]);
          const { out } = await pagedAttend(backend, q, cache, [seq], { causal: true });
          pieces.push(await backend.read(out));
        }
        const full = await attend(
          backend,
          backend.tensor(qAll, [1, HEADS, length, DIM]),
          backend.tensor(kAll, [1, KV_HEADS, length, DIM]),
          backend.tensor(vAll, [1, KV_HEADS, length, DIM]),
          { causal: true },
        );
        const want = await backend.read(full.out);
        // Reassemble the chunks' [H, n, D] outputs into [H, length, D].
        const got = new Float32Array(want.length);
        let at = 0;
        for (const piece of pieces) {
          const n = piece.length / (HEADS * DIM);
          for (let h = 0; h < HEADS; h++) {
            got.set(piece.subarray(h * n * DIM, (h + 1) * n * DIM), (h * length + at) * DIM);
          }
          at += n;
        }
        assertLessOrEqual(maxAbsError(got, want), 1e-5);
        cache.dispose();
      },
    ),
    { numRuns: 30 },
  );
  backend.dispose();
});

Deno.test("StreamingLLM through the cache: a windowed cache with sinks releases old blocks and still equals contiguous attention", async () => {
  const backend = createCpuBackend();
  const WINDOW = 8, SINKS = 4;
  const cache = new KvCache(backend, {
    numBlocks: 8,
    blockSize: 4,
    kvHeads: KV_HEADS,
    headDim: DIM,
    window: WINDOW,
    sinks: SINKS,
  });
  const seq = cache.create();
  const tokens: number[] = [];
  const streaming = or(slidingWindow(WINDOW), sinksMask(SINKS));
  // 60 tokens one at a time would need 15 blocks without the window: 8 must do.
  for (let t = 0; t < 60; t++) {
    tokens.push(t % 9);
    const k = backend.tensor(sliceTokens(rowsOf(tokens, 0), tokens.length, t), [
      1,
      KV_HEADS,
      1,
      DIM,
    ]);
    const v = backend.tensor(sliceTokens(rowsOf(tokens, 1), tokens.length, t), [
      1,
      KV_HEADS,
      1,
      DIM,
    ]);
    await cache.append(seq, [tokens[t]], [{ k, v }]);
    const q = backend.tensor(randomData(HEADS * DIM, t), [1, HEADS, 1, DIM]);
    const paged = await pagedAttend(backend, q, cache, [seq], { mask: streaming });
    const all = (salt: number) =>
      backend.tensor(rowsOf(tokens, salt), [1, KV_HEADS, tokens.length, DIM]);
    const plain = await attend(backend, q, all(0), all(1), { mask: streaming });
    const [a, b] = await backend.readMany([paged.out, plain.out]);
    assertLessOrEqual(maxAbsError(a, b), 1e-5);
  }
  assertLessOrEqual(cache.table.stats().used, 5); // the sink block and the window's blocks
  cache.dispose();
  backend.dispose();
});
