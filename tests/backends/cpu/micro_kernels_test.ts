import fc from "fast-check";
import { assert, assertEquals, assertLessOrEqual } from "@std/assert";
import { createWasmEngine, detectKernelPath } from "../../../backends/cpu/wasm/_engine.ts";
import { GEMM_COLS, GEMM_ROWS } from "../../../backends/cpu/wasm/_gemm.ts";

const detected = detectKernelPath();
const paths = detected === "wasm-relaxed-simd"
  ? ["wasm-relaxed-simd", "wasm-simd"] as const
  : detected === "wasm-simd"
  ? ["wasm-simd"] as const
  : [] as const;

Deno.test("this runtime validates WebAssembly SIMD, so the micro-kernels are tested", () => {
  assert(paths.length > 0, `detected path ${detected}`);
});

for (const path of paths) {
  Deno.test(`${path} gemm equals a float64 product for random padded shapes`, () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 70 }),
        fc.integer({ min: 1, max: 1 << 30 }),
        fc.boolean(),
        (mBlocks, nBlocks, k, seed, accumulate) => {
          const m = mBlocks * GEMM_ROWS, n = nBlocks * GEMM_COLS;
          const engine = createWasmEngine(path);
          const kernels = engine.kernels({ headDim: k, tileCols: n, valueCols: n });
          const a = 0, b = 4 * m * k, c = b + 4 * k * n;
          const mem = engine.reserve(c + 4 * m * n);
          let x = seed;
          const rand = () => ((x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5;
          for (let i = 0; i < m * k + k * n + m * n; i++) mem[i] = rand();
          const before = mem.slice(c / 4, c / 4 + m * n);
          kernels.gemmScores(a, b, c, m, n, k, 0.5, accumulate ? 1 : 0);
          for (let i = 0; i < m; i++) {
            for (let j = 0; j < n; j++) {
              let sum = 0;
              for (let t = 0; t < k; t++) sum += mem[i * k + t] * mem[b / 4 + t * n + j];
              const want = 0.5 * sum + (accumulate ? before[i * n + j] : 0);
              assertLessOrEqual(Math.abs(mem[c / 4 + i * n + j] - want), 1e-5 * (1 + k));
            }
          }
        },
      ),
      { numRuns: 30 },
    );
  });

  Deno.test(`${path} softmax exp is within 2 ulp of Math.exp and keeps IEEE specials`, () => {
    const engine = createWasmEngine(path);
    const kernels = engine.kernels({ headDim: 8, tileCols: 8, valueCols: 8 });
    const count = 4096, s = 0, stats = 4 * count;
    const mem = engine.reserve(stats + 64);
    const xs = Float32Array.from({ length: count }, (_, i) => -100 + (100 * i) / (count - 1));
    mem.set(xs, 0);
    mem[stats / 4] = 0, mem[stats / 4 + 1] = 0; // running max 0: p = exp(s - 0)
    kernels.softmax(s, 4 * count, 1, count, stats, stats + 16, 0, 0);
    for (let i = 0; i < count; i++) {
      const want = Math.exp(xs[i]);
      if (want < 1.2e-38) assertEquals(mem[i] < 1.2e-38, true, `exp(${xs[i]})`);
      else assertLessOrEqual(Math.abs(mem[i] - want) / want, 2 * 2 ** -23, `exp(${xs[i]})`);
    }
    // A NaN score makes the row's maximum, sum and every p NaN, as IEEE arithmetic does.
    mem.set([-Infinity, 0, -1, NaN, 1, 2, 3, 4], 0);
    mem[stats / 4] = -3.4028234663852886e38, mem[stats / 4 + 1] = 0;
    kernels.softmax(s, 32, 1, 8, stats, stats + 16, 0, 0);
    assert(mem.slice(0, 8).every(Number.isNaN));
    assert(Number.isNaN(mem[stats / 4]) && Number.isNaN(mem[stats / 4 + 1]));
  });

  Deno.test(`${path} softmax matches a float64 online softmax over two tiles, padded columns 0`, () => {
    const engine = createWasmEngine(path);
    const kernels = engine.kernels({ headDim: 8, tileCols: 8, valueCols: 8 });
    const s = 0, stats = 256, o = 512;
    const mem = engine.reserve(1024);
    const rowA = [0.5, -1, 3, -Infinity, 2], rowB = [7, 1, -2, 0.25, 4];
    mem.fill(0);
    mem[stats / 4] = -3.4028234663852886e38, mem[stats / 4 + 1] = 0;
    for (let d = 0; d < 8; d++) mem[o / 4 + d] = 1;
    mem.set(rowA, 0);
    kernels.softmax(s, 32, 1, rowA.length, stats, o, 32, 2);
    assertEquals(mem[3], 0, "exp(-Infinity - max)");
    assertEquals([...mem.slice(5, 8)], [0, 0, 0], "columns past count");
    const maxA = 3;
    for (let d = 0; d < 8; d++) mem[o / 4 + d] = 1;
    mem.set(rowB, 0);
    kernels.softmax(s, 32, 1, rowB.length, stats, o, 32, 2);
    const max = 7;
    const sum = [...rowA, ...rowB].reduce((acc, x) => acc + Math.exp(x - max), 0);
    assertLessOrEqual(Math.abs(mem[stats / 4] - max), 0);
    assertLessOrEqual(Math.abs(mem[stats / 4 + 1] - sum) / sum, 4e-7);
    // The output row was rescaled by exp(maxA - max) when the maximum moved.
    assertLessOrEqual(Math.abs(mem[o / 4] - Math.exp(maxA - max)), 1e-7);
  });

  Deno.test(`${path} widenF16 gives Float16Array's values, specials and subnormals included`, () => {
    const engine = createWasmEngine(path);
    const kernels = engine.kernels({ headDim: 8, tileCols: 8, valueCols: 8 });
    const bits = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const mem = engine.reserve(2 * 65536 + 4 * 65536);
    new Uint16Array(mem.buffer, 0, 65536).set(bits);
    kernels.widenF16(0, 2 * 65536, 65536);
    const want = new Float16Array(bits.buffer);
    const got = new Float32Array(mem.buffer, 2 * 65536, 65536);
    for (let i = 0; i < 65536; i++) {
      assert(
        Object.is(got[i], want[i]) || (Number.isNaN(got[i]) && Number.isNaN(want[i])),
        `bits ${i}`,
      );
    }
  });
}
