/**
 * Built-in score modifiers: softcap and ALiBi.
 * @module
 */
import { add, div, headParam, kvIdx, mul, qPos, score, sub, tanh } from "./expr.ts";
import { specSizes } from "./spec.ts";
import { scoreMod, type Transform } from "./transforms.ts";
import { assertArray, assertFinite, assertInteger, fail } from "./_check.ts";

/**
 * Caps scores smoothly: `score ↦ cap · tanh(score / cap)` (Gemma 2, Grok).
 *
 * @param cap A positive finite number.
 * @returns The transform.
 * @throws {TypeError} If `cap` is not a number.
 * @throws {RangeError} If `cap` is not positive and finite.
 * @example
 * ```ts
 * import { attention, softcap, tensorDesc } from "@attend/attend/core";
 * const x = tensorDesc([1, 1, 4, 8]);
 * if (!softcap(50)(attention(x, x, x)).scoreMod) throw new Error("modifier set");
 * ```
 */
export function softcap(cap: number): Transform {
  assertFinite(cap, "apply softcap", "cap", true);
  return scoreMod(mul(cap, tanh(div(score, cap))));
}

/**
 * The standard ALiBi slopes for `heads` heads: `2^(-8i/n)` for the nearest power of two `n`,
 * interleaved with the next power's odd slopes when `heads` is not a power of two.
 *
 * @param heads Number of query heads.
 * @returns One slope per head.
 * @throws {TypeError} If `heads` is not a number.
 * @throws {RangeError} If `heads` is not a positive integer.
 * @example
 * ```ts
 * import { alibiSlopes } from "@attend/attend/core";
 * if (alibiSlopes(8)[0] !== 0.5) throw new Error("first slope of 8 heads is 1/2");
 * ```
 */
export function alibiSlopes(heads: number): number[] {
  assertInteger(heads, "compute ALiBi slopes", "heads", 1);
  const powers = (n: number) => Array.from({ length: n }, (_, i) => 2 ** (-8 * (i + 1) / n));
  const base = 2 ** Math.floor(Math.log2(heads));
  const extra = powers(2 * base).filter((_, i) => i % 2 === 0).slice(0, heads - base);
  return [...powers(base), ...extra];
}

/**
 * Adds a linear distance bias: `score + slope[h] · (kvIdx - pos(qIdx))` (ALiBi, bottom-right
 * aligned like the causal mask).
 *
 * @param slopes One slope per query head, e.g. `alibiSlopes(H)`.
 * @returns The transform; it throws when applied to a spec with another head count.
 * @throws {TypeError} If `slopes` is not an array of numbers.
 * @throws {RangeError} If `slopes` is empty or a slope is not finite, or (on apply) `slopes.length`
 * differs from q heads.
 * @example
 * ```ts
 * import { alibi, alibiSlopes, attention, tensorDesc } from "@attend/attend/core";
 * const x = tensorDesc([1, 4, 8, 8]);
 * if (!alibi(alibiSlopes(4))(attention(x, x, x)).scoreMod) throw new Error("modifier set");
 * ```
 */
export function alibi(slopes: readonly number[]): Transform {
  assertArray(slopes, "apply alibi", "slopes", "an array of numbers");
  if (slopes.length === 0) fail("range", "apply alibi", "slopes", "non-empty", slopes);
  slopes.forEach((s, i) => assertFinite(s, "apply alibi", `slopes[${i}]`));
  const bias = scoreMod(add(score, mul(headParam(slopes), sub(kvIdx, qPos))));
  return (spec) => {
    const { heads } = specSizes(spec);
    if (slopes.length !== heads) {
      throw new RangeError(
        `Cannot apply alibi: slopes.length must equal q heads (${heads}), current value is ${slopes.length}`,
      );
    }
    return bias(spec);
  };
}
