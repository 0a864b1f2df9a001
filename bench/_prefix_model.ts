/**
 * The prompt and K/V of the prefix-cache benchmark, shared by it and its writer process: one
 * layer, deterministic data per token position, a cache geometry and salt both processes use.
 * @module
 */
import type { Backend, Tensor } from "../backends/backend.ts";
import type { KvCacheOptions } from "../kv/mod.ts";

/** The benchmark's model sizes. */
export interface ModelSizes {
  readonly heads: number;
  readonly kvHeads: number;
  readonly dim: number;
  readonly prefix: number;
  readonly suffix: number;
}

/** Sizes per backend: the CPU's TypeScript paged kernel gets a smaller model. */
export function modelSizes(backend: string): ModelSizes {
  return backend === "cpu"
    ? { heads: 8, kvHeads: 2, dim: 64, prefix: 2048, suffix: 64 }
    : { heads: 32, kvHeads: 8, dim: 128, prefix: 2048, suffix: 64 };
}

/** The prompt: the shared prefix, then a suffix of its own. */
export function prompt(backend: string): number[] {
  const { prefix, suffix } = modelSizes(backend);
  return Array.from({ length: prefix + suffix }, (_, i) => (i * 31 + 7) % 50000);
}

/** Cache options both processes use (same geometry and salt, so prefix hashes agree). */
export function cacheOptions(backend: string): Omit<KvCacheOptions, "store"> {
  const { kvHeads, dim, prefix, suffix } = modelSizes(backend);
  return {
    numBlocks: 2 * Math.ceil((prefix + suffix) / 16) + 8,
    blockSize: 16,
    kvHeads,
    headDim: dim,
    salt: "bench",
  };
}

/** K or V rows `[1, kvHeads, n, dim]` of prompt positions `from .. from + n`. */
export function kvRows(backend: Backend, from: number, n: number, salt: number): Tensor {
  const { kvHeads, dim } = modelSizes(backend.name);
  const data = new Float32Array(kvHeads * n * dim);
  for (let h = 0; h < kvHeads; h++) {
    for (let j = 0; j < n; j++) {
      for (let d = 0; d < dim; d++) {
        data[(h * n + j) * dim + d] = Math.sin((from + j) * 0.013 + d * 0.7 + h + salt) * 0.5;
      }
    }
  }
  return backend.tensor(data, [1, kvHeads, n, dim]);
}
