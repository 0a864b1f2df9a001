/**
 * Queries on the constant int tables of `lookup` and `searchSorted` nodes, shared by the CPU
 * interpretation and tile classification.
 * @module
 */

/** The number of entries `<= x` of a non-decreasing list (binary search). */
export function countAtMost(sorted: readonly number[], x: number): number {
  let lo = 0, hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Sparse tables of minima and maxima over power-of-two runs, built once per frozen list. */
const sparse = new WeakMap<readonly number[], { min: Int32Array[]; max: Int32Array[] }>();

function sparseTables(values: readonly number[]): { min: Int32Array[]; max: Int32Array[] } {
  const known = sparse.get(values);
  if (known) return known;
  const min = [Int32Array.from(values)], max = [Int32Array.from(values)];
  for (let width = 2, k = 1; width <= values.length; width *= 2, k++) {
    const n = values.length - width + 1, half = width / 2;
    min.push(
      Int32Array.from({ length: n }, (_, i) => Math.min(min[k - 1][i], min[k - 1][i + half])),
    );
    max.push(
      Int32Array.from({ length: n }, (_, i) => Math.max(max[k - 1][i], max[k - 1][i + half])),
    );
  }
  const tables = { min, max };
  if (Object.isFrozen(values)) sparse.set(values, tables);
  return tables;
}

/**
 * The smallest and largest of `values[lo..hi]` (inclusive, `0 <= lo <= hi < length`) in O(1)
 * after an O(n log n) build, so classifying many tiles against one table stays cheap.
 */
export function rangeHull(values: readonly number[], lo: number, hi: number): [number, number] {
  const { min, max } = sparseTables(values);
  const k = 31 - Math.clz32(hi - lo + 1), other = hi - (1 << k) + 1;
  return [Math.min(min[k][lo], min[k][other]), Math.max(max[k][lo], max[k][other])];
}
