/**
 * The backward oracle checked against central finite differences of the forward oracle, on
 * tiny shapes: so the kernels' reference is itself verified.
 * @module
 */
import fc from "fast-check";
import { assertMatchesDifferences, centralDifferences } from "./_finite_differences.ts";
import { oracle } from "./_oracle.ts";
import { type BackwardCase, backwardOracle } from "./_backward_oracle.ts";
import { modifierCase } from "./_backward_cases.ts";
import { maskCase, problemData, randomData, shapeArb } from "./_arbitraries.ts";

/** `Σ dOut ∘ out`, the loss whose gradient `dOut` is. */
function loss(c: BackwardCase, dOut: Float32Array): number {
  const { out } = oracle(c);
  return out.reduce((acc, o, i) => acc + o * dOut[i], 0);
}

/** Central differences of the loss along `x`; checked against `analytic` to 1e-6. */
function assertClose(
  name: string,
  analytic: ArrayLike<number>,
  c: BackwardCase,
  dOut: Float32Array,
  x: number[] | Float64Array,
): void {
  assertMatchesDifferences(name, analytic, centralDifferences(() => loss(c, dOut), x), 1e-6);
}

Deno.test("the backward oracle equals central finite differences (masks, modifiers, sinks, ALiBi slopes, GQA)", () => {
  const shapes = shapeArb({ batch: 2, kvHeads: 2, group: 2, len: 5, dim: 4 });
  fc.assert(
    fc.property(
      shapes.chain((s) =>
        fc.record({
          shape: fc.constant(s),
          mask: fc.option(maskCase, { nil: undefined }),
          modifier: fc.option(modifierCase(s.heads), { nil: undefined }),
          sinks: fc.option(
            fc.array(fc.double({ min: -2, max: 2, noNaN: true }), {
              minLength: s.heads,
              maxLength: s.heads,
            }),
            { nil: undefined },
          ),
          seed: fc.integer({ min: 1, max: 1 << 30 }),
        })
      ),
      ({ shape, mask, modifier, sinks, seed }) => {
        // Float64 copies: finite differences move elements by less than an f32 ulp.
        const data = Object.fromEntries(
          Object.entries(problemData(shape, seed)).map(([k, x]) => [k, Float64Array.from(x)]),
        ) as Record<"q" | "k" | "v", Float64Array>;
        const dOut = randomData(shape.batch * shape.heads * shape.qLen * shape.valueDim, seed + 3);
        const sinkValues = sinks && [...sinks];
        const slopes = modifier?.slopes && [...modifier.slopes];
        const callbacks = modifier?.callbacks(shape.qLen, shape.kvLen, slopes ?? []);
        const c: BackwardCase = {
          ...shape,
          ...data,
          scale: 1 / Math.sqrt(shape.headDim),
          allowed: mask && ((b, h, i, j) => mask.allowed(b, h, i, j, shape.qLen, shape.kvLen)),
          ...callbacks,
          sinks: sinkValues,
        };
        const ref = backwardOracle(c, dOut);
        assertClose("dq", ref.dq, c, dOut, data.q);
        assertClose("dk", ref.dk, c, dOut, data.k);
        assertClose("dv", ref.dv, c, dOut, data.v);
        if (sinkValues) assertClose("dSinks", ref.dSinks, c, dOut, sinkValues);
        if (slopes) assertClose("dSlopes", ref.dSlopes, c, dOut, slopes);
      },
    ),
    { numRuns: 60, verbose: true },
  );
});
