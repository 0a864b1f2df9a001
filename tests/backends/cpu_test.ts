import fc from "fast-check";
import { assert, assertEquals, assertLessOrEqual } from "@std/assert";
import { kvIdx, lt } from "../../core/mod.ts";
import { cpuCaps, createCpuBackend } from "../../backends/cpu/mod.ts";
import { maskCase, oracleCase, problemData, scoreModCase, shapeArb } from "../_arbitraries.ts";
import { maxAbsError, oracle, tolerance } from "../_oracle.ts";
import { roundF16, runProblem } from "../_run.ts";
import { assertGqaEqualsRepeatedKv } from "../_gqa.ts";

// The WebAssembly kernels and the TypeScript reference, each against the oracle.
for (const kernels of new Set([cpuCaps.engine, "typescript"] as const)) {
  const cpu = createCpuBackend({ kernels });

  Deno.test(`cpu (${kernels}) flash and materialized equal the oracle for random shapes, masks and modifiers`, async () => {
    await fc.assert(
      fc.asyncProperty(
        shapeArb(),
        fc.option(maskCase, { nil: undefined }),
        fc.option(scoreModCase, { nil: undefined }),
        fc.boolean(),
        fc.integer({ min: 1, max: 1 << 30 }),
        fc.record({ q: fc.integer({ min: 1, max: 48 }), kv: fc.integer({ min: 1, max: 48 }) }),
        async (shape, m, s, bnhd, seed, tileShape) => {
          const data = problemData(shape, seed);
          const c = oracleCase(shape, data, 1 / Math.sqrt(shape.headDim), m, s);
          const ref = oracle(c);
          const tol = tolerance(c, ref);
          const flash = await runProblem(cpu, shape, data, {
            mask: m,
            scoreMod: s,
            bnhd,
            tile: tileShape,
            lse: true,
          });
          const naive = await runProblem(cpu, shape, data, {
            mask: m,
            scoreMod: s,
            bnhd,
            family: "materialized",
            lse: true,
          });
          assertEquals(flash.family, "flash");
          assertLessOrEqual(maxAbsError(flash.out, ref.out), tol, `flash out, mask ${m?.name}`);
          assertLessOrEqual(
            maxAbsError(naive.out, ref.out),
            tol,
            `materialized out, mask ${m?.name}`,
          );
          assertLessOrEqual(maxAbsError(flash.lse!, ref.lse), 1e-4, "flash lse");
          assertLessOrEqual(maxAbsError(naive.lse!, ref.lse), 1e-4, "materialized lse");
        },
      ),
      { numRuns: 40, verbose: true },
    );
  });

  Deno.test(`cpu (${kernels}) probabilities equal the oracle's and sum to one on non-empty rows`, async () => {
    const shape = { batch: 1, heads: 2, kvHeads: 1, qLen: 7, kvLen: 13, headDim: 24, valueDim: 24 };
    const data = problemData(shape, 7);
    const ref = oracle(oracleCase(shape, data, 1 / Math.sqrt(24)));
    const { probs } = await runProblem(cpu, shape, data, { probs: true });
    assertEquals(probs!.length, 2 * 7 * 13);
    assertLessOrEqual(maxAbsError(probs!, ref.probs), 1e-6);
  });

  Deno.test(`cpu (${kernels}) f16 storage matches the oracle on f16-rounded inputs within half an f16 ulp`, async () => {
    const shape = {
      batch: 2,
      heads: 4,
      kvHeads: 2,
      qLen: 33,
      kvLen: 72,
      headDim: 72,
      valueDim: 72,
    };
    const raw = problemData(shape, 11);
    const data = { q: roundF16(raw.q), k: roundF16(raw.k), v: roundF16(raw.v) };
    const c = oracleCase(shape, data, 1 / Math.sqrt(72));
    const ref = oracle(c);
    const { out } = await runProblem(cpu, shape, data, { dtype: "f16" });
    const tol = tolerance(c, ref);
    for (let i = 0; i < out.length; i++) {
      assertLessOrEqual(Math.abs(out[i] - ref.out[i]), Math.abs(ref.out[i]) * 2 ** -11 + tol);
    }
  });

  Deno.test(`cpu (${kernels}) rows with no allowed key give zeros and lse -Infinity`, async () => {
    const shape = { batch: 1, heads: 1, kvHeads: 1, qLen: 5, kvLen: 3, headDim: 8, valueDim: 8 };
    const data = problemData(shape, 3);
    const prefixNone = { name: "none", expr: lt(kvIdx, 0), allowed: () => false };
    for (const family of ["flash", "materialized"] as const) {
      const { out, lse } = await runProblem(cpu, shape, data, {
        mask: prefixNone,
        family,
        lse: true,
      });
      assert(out.every((x) => x === 0), `${family} out is zeros`);
      assert(lse!.every((x) => x === -Infinity), `${family} lse is -Infinity`);
    }
  });

  Deno.test(`cpu (${kernels}) GQA equals MHA with repeated KV heads`, async () => {
    await assertGqaEqualsRepeatedKv(cpu, 25);
  });
}
