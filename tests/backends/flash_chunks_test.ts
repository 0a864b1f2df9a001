import { assert, assertEquals, assertRejects } from "@std/assert";
import { attention, tensorDesc } from "../../core/mod.ts";
import { createCpuBackend } from "../../backends/cpu/mod.ts";
import { createWebGpuBackend } from "../../backends/webgpu/mod.ts";
import {
  flashChunks,
  flashPrefetchItems,
  flashVecAligned,
  flashWorkgroupBytes,
} from "../../backends/webgpu/kernels/flash_wgsl.ts";

const H100_BYTES = 49152, LLVMPIPE_BYTES = 32768;
const hardware = { tile: { q: 128, kv: 64 }, keysPerThread: 4, valueDim: 128, vec: true } as const;

Deno.test("flash chunks: D128 on 48 KiB streams 32 dims and 32 keys, filling the memory", () => {
  const chunks = flashChunks(H100_BYTES, hardware, 128);
  assertEquals(chunks, { dk: 32, kc: 32 });
  assertEquals(flashWorkgroupBytes({ ...hardware, ...chunks! }), H100_BYTES);
});

Deno.test("flash chunks: the smallest chunk covering a small head dim, one chunk of keys", () => {
  const shape = { ...hardware, valueDim: 24 };
  assertEquals(flashChunks(H100_BYTES, shape, 24)?.dk, 32);
  assertEquals(flashChunks(H100_BYTES, { ...shape, vec: false }, 1)?.dk, 4);
  assertEquals(flashChunks(H100_BYTES, { ...hardware, valueDim: 64 }, 64)?.kc, 64);
});

Deno.test("flash chunks fit the limit, divide the tile and bound the prefetch, for every dim", () => {
  for (const limit of [H100_BYTES, LLVMPIPE_BYTES]) {
    for (const tile of [{ q: 16, kv: 16 }, { q: 64, kv: 64 }, { q: 128, kv: 64 }]) {
      for (const keysPerThread of [4, 8] as const) {
        for (const dim of [1, 4, 24, 64, 72, 128, 256]) {
          for (const vec of dim % 4 === 0 ? [false, true] : [false]) {
            const shape = { tile, keysPerThread, valueDim: dim, vec };
            const chunks = flashChunks(limit, shape, dim);
            if (!chunks) continue;
            const full = { ...shape, ...chunks };
            const at = `${tile.q}x${tile.kv}/${keysPerThread} D${dim} vec ${vec} limit ${limit}`;
            assert(flashWorkgroupBytes(full) <= limit, at);
            assertEquals(tile.kv % chunks.kc, 0, at);
            if (vec) assertEquals(chunks.dk % 8, 0, at);
            assert(flashPrefetchItems(full) <= 4 || chunks.dk === (vec ? 8 : 4), at);
          }
        }
      }
    }
  }
});

Deno.test("flash chunks: undefined when nothing fits", () => {
  assertEquals(flashChunks(4096, hardware, 128), undefined);
});

Deno.test("flash vec loads need four-aligned dims, strides and offsets, unit head stride", () => {
  const cpu = createCpuBackend();
  const plan = (dim: number, q = tensorDesc([1, 2, 8, dim])) =>
    cpu.plan(attention(q, tensorDesc([1, 2, 8, dim]), tensorDesc([1, 2, 8, dim])));
  assert(flashVecAligned(plan(32)));
  assert(!flashVecAligned(plan(30)));
  const shifted = { ...tensorDesc([1, 2, 8, 32]), offset: 2 };
  assert(!flashVecAligned(plan(32, shifted)));
  const transposed = { ...tensorDesc([1, 2, 8, 32]), strides: [512, 1, 64, 2] };
  assert(!flashVecAligned(plan(32, transposed)));
});

Deno.test("createWebGpuBackend rejects a bad flashUnroll before acquiring a device", async () => {
  for (const flashUnroll of [3, 0, 128, 0.5]) {
    await assertRejects(
      () => createWebGpuBackend({ flashUnroll }),
      RangeError,
      `flashUnroll must be a power of two up to 64, current value is ${flashUnroll}`,
    );
  }
});
