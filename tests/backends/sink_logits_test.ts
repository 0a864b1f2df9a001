import fc from "fast-check";
import { assert, assertEquals, assertLessOrEqual } from "@std/assert";
import {
  attention,
  compose,
  groupHeads,
  kernel,
  kvIdx,
  lt,
  mask,
  sinkLogits,
  type Transform,
} from "../../core/mod.ts";
import type { Backend } from "../../backends/backend.ts";
import { createCpuBackend } from "../../backends/cpu/mod.ts";
import { maskCase, oracleCase, problemData, shapeArb } from "../_arbitraries.ts";
import { maxAbsError, oracle, tolerance } from "../_oracle.ts";
import { gpu } from "../_webgpu.ts";

const backends: Backend[] = [createCpuBackend(), createCpuBackend({ kernels: "typescript" })];
if (gpu) backends.push(gpu);

async function run(
  backend: Backend,
  shape: ReturnType<typeof shapeArb> extends fc.Arbitrary<infer S> ? S : never,
  data: { q: Float32Array; k: Float32Array; v: Float32Array },
  transforms: Transform[],
  probs = false,
) {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = shape;
  const q = backend.tensor(data.q, [batch, heads, qLen, headDim]);
  const k = backend.tensor(data.k, [batch, kvHeads, kvLen, headDim]);
  const v = backend.tensor(data.v, [batch, kvHeads, kvLen, valueDim]);
  const spec = compose(groupHeads(), ...transforms)(attention(q, k, v, { lse: true, probs }));
  const result = await backend.run(backend.plan(spec), { q, k, v });
  const [out, lse, p] = await backend.readMany(
    [result.out, result.lse!, ...(result.probs ? [result.probs] : [])],
  );
  return { out, lse, probs: p };
}

for (const backend of backends) {
  const name = `${backend.name} (${backend.caps.engine})`;
  Deno.test(`${name} sink logits join the denominator as the oracle's virtual key`, async () => {
    await fc.assert(
      fc.asyncProperty(
        shapeArb({ batch: 2, len: 70, dim: 40 }),
        fc.option(maskCase, { nil: undefined }),
        fc.array(fc.double({ min: -30, max: 30, noNaN: true }), { minLength: 8, maxLength: 8 }),
        fc.constantFrom("flash" as const, "materialized" as const),
        fc.integer({ min: 1, max: 1 << 30 }),
        async (shape, m, logits, family, seed) => {
          const sinks = logits.slice(0, shape.heads).concat(
            Array(Math.max(0, shape.heads - logits.length)).fill(0),
          );
          const data = problemData(shape, seed);
          const c = { ...oracleCase(shape, data, 1 / Math.sqrt(shape.headDim), m), sinks };
          const ref = oracle(c);
          const got = await run(backend, shape, data, [
            ...(m ? [mask(m.expr)] : []),
            sinkLogits(sinks),
            kernel(family),
          ]);
          assertLessOrEqual(maxAbsError(got.out, ref.out), tolerance(c, ref), `${family} out`);
          assertLessOrEqual(maxAbsError(got.lse, ref.lse), 1e-4, `${family} lse`);
        },
      ),
      { numRuns: backend.name === "webgpu" ? 12 : 30 },
    );
  });

  Deno.test(`${name} a row that sees no key gives zeros and lse equal to its head's sink`, async () => {
    const shape = { batch: 1, heads: 2, kvHeads: 1, qLen: 5, kvLen: 9, headDim: 8, valueDim: 8 };
    const data = problemData(shape, 2);
    for (const family of ["flash", "materialized"] as const) {
      const got = await run(backend, shape, data, [
        mask(lt(kvIdx, 0)),
        sinkLogits([1.5, -2]),
        kernel(family),
      ], family === "materialized");
      assert(got.out.every((x) => x === 0), `${family} zeros`);
      assertEquals([...got.lse], [1.5, 1.5, 1.5, 1.5, 1.5, -2, -2, -2, -2, -2].map(Math.fround));
      if (got.probs) assert(got.probs.every((x) => x === 0), "no probability mass on keys");
    }
  });

  Deno.test(`${name} with a sink logit the probabilities of a row sum to 1 - its sink share`, async () => {
    const shape = { batch: 1, heads: 1, kvHeads: 1, qLen: 3, kvLen: 6, headDim: 4, valueDim: 4 };
    const data = problemData(shape, 5);
    const got = await run(backend, shape, data, [sinkLogits([0.25])], true);
    for (let i = 0; i < 3; i++) {
      const sum = got.probs!.slice(i * 6, i * 6 + 6).reduce((a, b) => a + b, 0);
      // p(sink) = exp(sink - lse)
      assertLessOrEqual(Math.abs(sum + Math.exp(0.25 - got.lse[i]) - 1), 1e-5);
    }
  });
}
