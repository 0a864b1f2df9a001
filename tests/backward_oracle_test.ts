/**
 * The backward oracle checked against central finite differences of the forward oracle, on
 * tiny shapes: so the kernels' reference is itself verified.
 * @module
 */
import fc from "fast-check";
import { assertLessOrEqual } from "@std/assert";
import { oracle } from "./_oracle.ts";
import { type BackwardCase, backwardOracle } from "./_backward_oracle.ts";
import { modifierCase } from "./_backward_cases.ts";
import { maskCase, problemData, randomData, shapeArb } from "./_arbitraries.ts";

/** `Σ dOut ∘ out`, the loss whose gradient `dOut` is. */
function loss(c: BackwardCase, dOut: Float32Array): number {
  const { out } = oracle(c);
  return out.reduce((acc, o, i) => acc + o * dOut[i], 0);
}

/** Central differences of the loss along each element of `x` (modified in place, restored). */
function numeric(c: BackwardCase, dOut: Float32Array, x: number[] | Float64Array): number[] {
  const eps = 1e-5;
  return Array.from(x, (_, n) => {
    const keep = x[n];
    x[n] = keep + eps;
    const up = loss(c, dOut);
    x[n] = keep - eps;
    const down = loss(c, dOut);
    x[n] = keep;
    return (up - down) / (2 * eps);
  });
}

function assertClose(name: string, analytic: ArrayLike<number>, fd: readonly number[]): void {
  for (let n = 0; n < fd.length; n++) {
    const err = Math.abs(analytic[n] - fd[n]);
    assertLessOrEqual(
      err,
      1e-6 + 1e-6 * Math.abs(fd[n]),
      `${name}[${n}]: ${analytic[n]} vs ${fd[n]}`,
    );
  }
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
        assertClose("dq", ref.dq, numeric(c, dOut, data.q));
        assertClose("dk", ref.dk, numeric(c, dOut, data.k));
        assertClose("dv", ref.dv, numeric(c, dOut, data.v));
        if (sinkValues) assertClose("dSinks", ref.dSinks, numeric(c, dOut, sinkValues));
        if (slopes) assertClose("dSlopes", ref.dSlopes, numeric(c, dOut, slopes));
      },
    ),
    { numRuns: 60, verbose: true },
  );
});
