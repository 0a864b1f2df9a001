/**
 * The linear-attention backward oracle checked against central finite differences of the
 * forward oracle on tiny shapes (every feature map, Performer's included, decays, GQA, causal
 * and not, normalized and not), so the kernels' reference is itself verified.
 * @module
 */
import fc from "fast-check";
import { assertMatchesDifferences, centralDifferences } from "./_finite_differences.ts";
import { linearOracle } from "./_linear_oracle.ts";
import { type LinearBackwardCase, linearBackwardOracle } from "./_linear_backward_oracle.ts";
import { caseOf, dataOf, mapArb } from "./_linear_properties.ts";
import { randomData, shapeArb } from "./_arbitraries.ts";

/** `Σ dOut ∘ out`, the loss whose gradient `dOut` is. */
function loss(c: LinearBackwardCase, dOut: Float32Array): number {
  return linearOracle(c).reduce((acc, o, i) => acc + o * dOut[i], 0);
}

/** Central differences of the loss along `x`; checked against `analytic` to 1e-5. */
function assertClose(
  name: string,
  analytic: ArrayLike<number>,
  c: LinearBackwardCase,
  dOut: Float32Array,
  x: { [n: number]: number; length: number },
): void {
  assertMatchesDifferences(name, analytic, centralDifferences(() => loss(c, dOut), x), 1e-5);
}

Deno.test("the linear backward oracle equals central finite differences (maps, Performer, decays, GQA, causal, unnormalized)", () => {
  const shapes = shapeArb({ batch: 2, kvHeads: 2, group: 2, len: 5, dim: 4 });
  fc.assert(
    fc.property(
      shapes,
      mapArb,
      fc.boolean(),
      fc.boolean(),
      fc.array(fc.double({ min: 0.4, max: 1, noNaN: true }), { minLength: 4, maxLength: 4 }),
      fc.integer({ min: 1, max: 1 << 20 }),
      (shape, map, causal, normalize, decays, seed) => {
        const p = {
          shape,
          map,
          causal,
          normalize: normalize && map.positive,
          decay: causal ? decays.slice(0, shape.heads) : undefined,
          dtype: "f32" as const,
          bnhd: false,
          seed,
        };
        const data = dataOf(p);
        const scale = shape.headDim > 0 ? 1 / Math.sqrt(shape.headDim) : 1;
        // Mutable copies the differences perturb.
        const q = Float64Array.from(data.q), k = Float64Array.from(data.k);
        const v = Float64Array.from(data.v), decay = p.decay && [...p.decay];
        const c: LinearBackwardCase = {
          ...caseOf(p, data),
          q,
          k,
          v,
          decay,
          pullback: map.pullback(shape.headDim, scale),
        };
        const dOut = randomData(shape.batch * shape.heads * shape.qLen * shape.valueDim, seed + 7);
        const ref = linearBackwardOracle(c, dOut);
        assertClose("dq", ref.dq, c, dOut, q);
        assertClose("dk", ref.dk, c, dOut, k);
        assertClose("dv", ref.dv, c, dOut, v);
        if (decay) assertClose("dDecay", ref.dDecay, c, dOut, decay);
      },
    ),
    { numRuns: 60 },
  );
});
