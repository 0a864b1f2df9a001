/**
 * A float64 reference for the demo (independent of the library's kernels).
 * @module
 */

/** Problem of the demo: `[1, H, N, D]` queries, `[1, Hkv, N, D]` keys and values. */
export interface DemoProblem {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  batch: number;
  heads: number;
  kvHeads: number;
  n: number;
  dim: number;
  allowed: (i: number, j: number) => boolean;
  modify?: (s: number, h: number, i: number, j: number) => number;
}

/** Softmax attention in float64, row by row. */
export function referenceAttention(p: DemoProblem): Float64Array {
  const { heads, kvHeads, n, dim } = p;
  const out = new Float64Array(p.batch * heads * n * dim);
  const scores = new Float64Array(n);
  for (let h = 0; h < heads; h++) {
    const kh = Math.floor(h / (heads / kvHeads));
    for (let i = 0; i < n; i++) {
      let max = -Infinity;
      for (let j = 0; j < n; j++) {
        let dot = 0;
        for (let d = 0; d < dim; d++) {
          dot += p.q[(h * n + i) * dim + d] * p.k[(kh * n + j) * dim + d];
        }
        let s = dot / Math.sqrt(dim);
        if (p.modify) s = p.modify(s, h, i, j);
        scores[j] = p.allowed(i, j) ? s : -Infinity;
        max = Math.max(max, scores[j]);
      }
      let sum = 0;
      for (let j = 0; j < n; j++) sum += scores[j] = Math.exp(scores[j] - max);
      for (let j = 0; j < n; j++) {
        for (let d = 0; d < dim; d++) {
          out[(h * n + i) * dim + d] += scores[j] / sum * p.v[(kh * n + j) * dim + d];
        }
      }
    }
  }
  return out;
}
