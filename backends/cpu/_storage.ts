/**
 * CPU tensor storage: a typed array per tensor, Float32Array or Float16Array.
 * @module
 */
import type { Tensor } from "../backend.ts";
import { contiguousStrides, type DType } from "../../core/tensor_desc.ts";

/** Typed array of a CPU tensor. */
export type HostArray = Float32Array | Float16Array;

/** CPU storage handle. */
export interface CpuStorage {
  /** The elements; `released` storage throws on use. */
  data: HostArray;
  /** Set by `release()`. */
  released: boolean;
}

/** Allocates a host array of a dtype. */
export function hostArray(dtype: DType, length: number): HostArray {
  return dtype === "f16" ? new Float16Array(length) : new Float32Array(length);
}

/** The data behind a CPU tensor. */
export function dataOf(t: Tensor): HostArray {
  const storage = t.storage as CpuStorage;
  if (storage.released) {
    throw new TypeError("Cannot use tensor: its storage was released, current state is released");
  }
  return storage.data;
}

/** Makes a contiguous CPU tensor over `data`. */
export function cpuTensor(data: HostArray, shape: readonly number[], dtype: DType): Tensor {
  return Object.freeze({
    backend: "cpu",
    storage: { data, released: false } satisfies CpuStorage,
    dtype,
    shape: Object.freeze([...shape]),
    strides: Object.freeze(contiguousStrides(shape)),
    offset: 0,
  });
}

/** Copies rows `[0, rows)` of head `(b, h)` of a rank-4 view into a row-major `rows × dim` block. */
export function gatherHead(t: Tensor, b: number, h: number): Float32Array {
  const data = dataOf(t);
  const [, , rows, dim] = t.shape;
  const [sb, sh, sn, sd] = t.strides;
  const out = new Float32Array(rows * dim);
  const base = t.offset + b * sb + h * sh;
  for (let n = 0; n < rows; n++) {
    const row = base + n * sn;
    for (let d = 0; d < dim; d++) out[n * dim + d] = data[row + d * sd];
  }
  return out;
}
