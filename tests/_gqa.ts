/**
 * The grouped-query property shared by every backend: attention with `groupHeads()` equals
 * multi-head attention on K and V whose heads are repeated `heads / kvHeads` times.
 * @module
 */
import fc from "fast-check";
import { assertLessOrEqual } from "@std/assert";
import type { Backend } from "../backends/backend.ts";
import { maskAtom, problemData, type Shape, shapeArb } from "./_arbitraries.ts";
import { maxAbsError } from "./_oracle.ts";
import { runProblem } from "./_run.ts";

/** BHND data with each KV head repeated `group` times along the head axis. */
export function repeatKvHeads(x: Float32Array, shape: Shape, rowDim: number): Float32Array {
  const { batch, heads, kvHeads, kvLen } = shape;
  const group = heads / kvHeads;
  const block = kvLen * rowDim;
  const out = new Float32Array(batch * heads * block);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const from = (b * kvHeads + Math.floor(h / group)) * block;
      out.set(x.subarray(from, from + block), (b * heads + h) * block);
    }
  }
  return out;
}

/** Checks GQA = MHA-with-repeated-KV on random shapes, masks and groupings. */
export async function assertGqaEqualsRepeatedKv(backend: Backend, numRuns: number): Promise<void> {
  await fc.assert(
    fc.asyncProperty(
      shapeArb({ batch: 2, kvHeads: 2, group: 4, len: 70, dim: 40 }),
      fc.option(maskAtom, { nil: undefined }),
      fc.integer({ min: 1, max: 1 << 30 }),
      async (shape, m, seed) => {
        const data = problemData(shape, seed);
        const repeated = {
          q: data.q,
          k: repeatKvHeads(data.k, shape, shape.headDim),
          v: repeatKvHeads(data.v, shape, shape.valueDim),
        };
        const options = { mask: m, family: "flash" as const, lse: true };
        const gqa = await runProblem(backend, shape, data, options);
        const mha = await runProblem(
          backend,
          { ...shape, kvHeads: shape.heads },
          repeated,
          options,
        );
        assertLessOrEqual(maxAbsError(gqa.out, mha.out), 1e-6, `out, mask ${m?.name}`);
        assertLessOrEqual(maxAbsError(gqa.lse!, mha.lse!), 1e-6, `lse, mask ${m?.name}`);
      },
    ),
    { numRuns },
  );
}
