/**
 * Performer's random projection, drawn in core from a seeded PRNG so that every backend uses
 * the very same matrix for a seed.
 * @module
 */
import { assertInteger, fail, MAX_SIZE } from "./_check.ts";
import { MAX_FEATURES } from "./linear.ts";
import { mulberry32 } from "./_random.ts";

const cache = new Map<string, Float64Array>();
const KEPT = 16;

/** Standard normal draws (Box-Muller, both values used). */
function gaussian(next: () => number): () => number {
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(1 - next()));
    const t = 2 * Math.PI * next();
    spare = r * Math.sin(t);
    return r * Math.cos(t);
  };
}

/**
 * Performer's `m × D` projection `W` (row-major, float64): rows i.i.d. standard Gaussian, or,
 * when `orthogonal`, blocks of `D` rows made orthogonal (Gram-Schmidt) and each rescaled to the
 * norm of an independent Gaussian vector, so every row keeps its marginal distribution. Equal
 * arguments give the same matrix, on every backend and runtime.
 *
 * @param seed A 32-bit integer.
 * @param features Rows `m`, 1..65536.
 * @param headDim Columns `D`.
 * @param orthogonal Whether rows are orthogonal in blocks of `D`.
 * @returns The matrix (shared: do not modify it).
 * @throws {TypeError} / {RangeError} If a size or the seed is not an integer in range.
 * @example
 * ```ts
 * import { performerMatrix } from "@attend/attend/core";
 * const w = performerMatrix(7, 4, 4, true);
 * const dot = w.slice(0, 4).reduce((s, x, d) => s + x * w[4 + d], 0);
 * if (Math.abs(dot) > 1e-9) throw new Error("rows of one block are orthogonal");
 * if (performerMatrix(7, 4, 4, true)[5] !== w[5]) throw new Error("same seed, same matrix");
 * ```
 */
export function performerMatrix(
  seed: number,
  features: number,
  headDim: number,
  orthogonal: boolean,
): Float64Array {
  const context = "draw performer matrix";
  assertInteger(seed, context, "seed", -(2 ** 31), 2 ** 32 - 1);
  assertInteger(features, context, "features", 1, MAX_FEATURES);
  assertInteger(headDim, context, "headDim", 0, MAX_SIZE);
  if (typeof orthogonal !== "boolean") fail("type", context, "orthogonal", "a boolean", orthogonal);
  if (features * headDim > 2 ** 26) {
    fail("range", context, "features·headDim", "at most 67108864", features * headDim);
  }
  const key = `${seed}/${features}/${headDim}/${orthogonal}`;
  const known = cache.get(key);
  if (known) return known;
  const normal = gaussian(mulberry32(seed));
  const w = new Float64Array(features * headDim);
  for (let i = 0; i < w.length; i++) w[i] = normal();
  if (orthogonal && headDim > 0) {
    for (let start = 0; start < features; start += headDim) {
      const end = Math.min(features, start + headDim);
      for (let r = start; r < end; r++) {
        const row = w.subarray(r * headDim, (r + 1) * headDim);
        for (let s = start; s < r; s++) {
          const prev = w.subarray(s * headDim, (s + 1) * headDim);
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += row[d] * prev[d];
          for (let d = 0; d < headDim; d++) row[d] -= dot * prev[d];
        }
        let norm = 0;
        for (let d = 0; d < headDim; d++) norm += row[d] * row[d];
        norm = Math.sqrt(norm);
        for (let d = 0; d < headDim; d++) row[d] /= norm;
      }
    }
    // Each unit row takes the length of an independent Gaussian vector.
    for (let r = 0; r < features; r++) {
      let length = 0;
      for (let d = 0; d < headDim; d++) length += normal() ** 2;
      length = Math.sqrt(length);
      for (let d = 0; d < headDim; d++) w[r * headDim + d] *= length;
    }
  }
  cache.set(key, w);
  if (cache.size > KEPT) cache.delete(cache.keys().next().value!);
  return w;
}
