/**
 * The flash kernel's two products, unrolled by the generator into named registers (the shader
 * compilers we measured neither unroll these loops nor keep indexed private arrays in
 * registers):
 *
 * - S = Q·Kᵀ: per head dimension, one `vec4` of Q feeds four rows and one `vec4` of K four keys;
 * - O += P·V: per key, one `vec4` of P (four rows, stored transposed) feeds every `vec4` column
 *   of V the invocation owns.
 * @module
 */
import { acc, type FlashFrame, range, ROWS, sreg, XYZW } from "./_flash_geometry.ts";

/** The body of the S loop over one head-dimension chunk: `uQK` dimensions per step. */
export function scoreStepsWgsl(f: FlashFrame): string {
  const { groups, tk, uQK } = f;
  // The chunk's swizzle at dimension d + w: a constant when the unrolled step covers whole
  // groups of eight dimensions.
  const swizzled = (slot: string, w: number) =>
    !f.g.swizzle
      ? slot
      : uQK % 8 === 0
      ? (w & 4 ? `((${slot}) ^ 4u)` : slot)
      : `((${slot}) ^ swz(d + ${w}u))`;
  return range(uQK).map((w) =>
    [
      `let a_${w} = sh[buf + (d + ${w}u) * QS + ${swizzled("ty", w)}];`,
      ...groups.map((gi) =>
        `let k${gi}_${w} = sh[buf + KOFF + (d + ${w}u) * KS + ${swizzled(`tx + ${gi * tk}u`, w)}];`
      ),
      ...groups.flatMap((gi) =>
        ROWS.map((r) => `${sreg(r, gi)} += a_${w}.${XYZW[r]} * k${gi}_${w};`)
      ),
    ].join("\n        ")
  ).join("\n        ");
}

/**
 * O += P·V over one V chunk. With a mask, partial tiles take a loop that skips hidden keys (one
 * key per step, not unrolled: partial tiles are few) so full tiles keep the plain unrolled loop;
 * without one, the only hidden keys are past `Nk`, whose V loads as zeros, and the second loop
 * is not generated (never run, it still cost 2% on an H100).
 */
export function valueProductsWgsl(f: FlashFrame): string {
  const { cols, tk, uPV } = f;
  // On partial tiles a hidden key's weight is -0.0: select it away rather than multiply, so
  // that NaN or Inf in its v cannot reach the row.
  const valueStep = (w: number, hidden: boolean) =>
    [
      `let p_${w} = sh[(kc + key + ${w}u) * BQ4 + ty];`,
      ...(hidden ? [`let n_${w} = bitcast<vec4<u32>>(p_${w}) == vec4<u32>(0x80000000u);`] : []),
      ...cols.map((i) => `let v${i}_${w} = sh[VOFF + (key + ${w}u) * DVP4 + tx + ${i * tk}u];`),
      ...cols.flatMap((i) =>
        ROWS.map((r) => {
          const term = `p_${w}.${XYZW[r]} * v${i}_${w}`;
          return `${acc(r, i)} += ${
            hidden ? `select(${term}, vec4<f32>(0.0), n_${w}.${XYZW[r]})` : term
          };`;
        })
      ),
    ].join("\n          ");
  const plainValueLoop = `for (var key = 0u; key < KC; key += ${uPV}u) {
          ${range(uPV).map((w) => valueStep(w, false)).join("\n          ")}
        }`;
  return f.params.mask
    ? `if (check) {
        for (var key = 0u; key < KC; key++) {
          ${valueStep(0, true)}
        }
      } else {
        ${plainValueLoop}
      }`
    : plainValueLoop;
}
