import fc from "fast-check";
import { assert, assertEquals } from "@std/assert";
import { cpuCaps, createCpuBackend } from "../../../backends/cpu/mod.ts";
import { THREAD_MIN_FLOPS } from "../../../backends/cpu/wasm/_flash_wasm.ts";
import { attention, compose, explain, groupHeads, mask, scoreMod } from "../../../core/mod.ts";
import { maskCase, problemData, scoreModCase } from "../../_arbitraries.ts";

Deno.test("cpu caps record SIMD, relaxed SIMD and threads; explain() names the engine", () => {
  assert(["wasm-relaxed-simd", "wasm-simd", "typescript"].includes(cpuCaps.engine));
  assertEquals(cpuCaps.simd, cpuCaps.engine !== "typescript");
  assert(cpuCaps.threads >= 1);
  const reference = createCpuBackend({ kernels: "typescript" });
  assertEquals(reference.caps.engine, "typescript");
  const x = reference.tensor(new Float32Array(2 * 128 * 8), [1, 2, 128, 8]);
  assert(explain(reference.plan(attention(x, x, x))).summary.includes("(cpu, typescript)"));
});

Deno.test("threaded CPU flash gives the same bits as one thread, whatever the masks and groups", async () => {
  const one = createCpuBackend({ threads: 1 });
  const two = createCpuBackend({ threads: 2 });
  let threaded = 0;
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          heads: fc.constantFrom(16, 32),
          group: fc.constantFrom(1, 4),
          qLen: fc.integer({ min: 400, max: 800 }),
          kvLen: fc.integer({ min: 400, max: 800 }),
          headDim: fc.constantFrom(24, 64, 72),
        }),
        fc.option(maskCase, { nil: undefined }),
        fc.option(scoreModCase, { nil: undefined }),
        fc.integer({ min: 1, max: 1 << 30 }),
        async (s, m, mod, seed) => {
          const shape = {
            batch: 1,
            heads: s.heads,
            kvHeads: s.heads / s.group,
            qLen: s.qLen,
            kvLen: s.kvLen,
            headDim: s.headDim,
            valueDim: s.headDim,
          };
          const data = problemData(shape, seed);
          const outs = [];
          for (const cpu of [one, two]) {
            const q = cpu.tensor(data.q, [1, shape.heads, shape.qLen, shape.headDim]);
            const k = cpu.tensor(data.k, [1, shape.kvHeads, shape.kvLen, shape.headDim]);
            const v = cpu.tensor(data.v, [1, shape.kvHeads, shape.kvLen, shape.valueDim]);
            const spec = compose(
              groupHeads(),
              ...(m ? [mask(m.expr)] : []),
              ...(mod ? [scoreMod(mod.expr)] : []),
            )(attention(q, k, v, { lse: true }));
            const plan = cpu.plan(spec);
            if (cpu === two && explain(plan).flops < THREAD_MIN_FLOPS) return; // too small to thread
            const { out, lse } = await cpu.run(plan, { q, k, v });
            outs.push(await cpu.readMany([out, lse!]));
          }
          if (outs.length < 2) return;
          threaded++;
          const [[outA, lseA], [outB, lseB]] = outs;
          assert(outA.every((x, i) => Object.is(x, outB[i])), "out bits differ");
          assert(lseA.every((x, i) => Object.is(x, lseB[i])), "lse bits differ");
        },
      ),
      {
        numRuns: 8,
        examples: [[
          { heads: 16, group: 4, qLen: 513, kvLen: 700, headDim: 72 },
          undefined,
          undefined,
          5,
        ]],
      },
    );
    assert(threaded > 0, "no case was large enough to use threads");
  } finally {
    one.dispose();
    two.dispose();
  }
});
