/**
 * The zero sizes `zero_size_test.ts` leaves out, against the float64 oracle on both backends and
 * both kernel families, with and without a mask: head dim 0 (scores of 0, so each row is the mean
 * of its visible values, default scale 1), no heads at all (Hq = Hkv = 0), and causal masks over
 * no keys or no queries.
 * @module
 */
import { assertEquals, assertLessOrEqual } from "@std/assert";
import { causal } from "../../core/mod.ts";
import type { Backend } from "../../backends/backend.ts";
import { createCpuBackend } from "../../backends/cpu/mod.ts";
import { type MaskCase, oracleCase, problemData, type Shape } from "../_arbitraries.ts";
import { maxAbsError, oracle } from "../_oracle.ts";
import { runProblem } from "../_run.ts";
import { gpu } from "../_webgpu.ts";

const backends: Backend[] = gpu ? [createCpuBackend(), gpu] : [createCpuBackend()];
const base: Shape = { batch: 1, heads: 2, kvHeads: 1, qLen: 5, kvLen: 6, headDim: 8, valueDim: 4 };
const causalCase: MaskCase = {
  name: "causal",
  expr: causal(),
  allowed: (_b, _h, i, j, nq, nk) => j <= i + nk - nq,
};

const cases: [string, Partial<Shape>][] = [
  ["head dim 0", { headDim: 0 }],
  ["no heads (Hq = Hkv = 0)", { heads: 0, kvHeads: 0 }],
  ["no keys (Nk = 0)", { kvLen: 0 }],
  ["no queries (Nq = 0)", { qLen: 0 }],
];

for (const backend of backends) {
  Deno.test(`${backend.name} head dim 0, no heads, and masks over nothing give the oracle's results`, async (t) => {
    for (const [name, change] of cases) {
      for (const family of ["flash", "materialized"] as const) {
        for (const m of [undefined, causalCase]) {
          await t.step(`${name}, ${family}, mask ${m?.name}`, async () => {
            const shape = { ...base, ...change };
            const data = problemData(shape, 3);
            // Head dim 0: every score is 0 whatever the scale (the default scale is then 1).
            const scale = shape.headDim > 0 ? 1 / Math.sqrt(shape.headDim) : 1;
            const ref = oracle(oracleCase(shape, data, scale, m));
            const got = await runProblem(backend, shape, data, { mask: m, family, lse: true });
            assertEquals(got.out.length, ref.out.length, "out size");
            assertEquals(got.lse!.length, ref.lse.length, "lse size");
            assertLessOrEqual(maxAbsError(got.out, ref.out), 1e-6, "out");
            assertLessOrEqual(maxAbsError(got.lse!, ref.lse), 1e-5, "lse");
            if (shape.kvLen === 0) assertEquals(new Set(got.lse), new Set([-Infinity]));
          });
        }
      }
    }
  });
}
