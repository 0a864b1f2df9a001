/**
 * CPU tensor storage: a typed array per tensor, Float32Array or Float16Array, owned by one
 * backend instance.
 * @module
 */
import type { Tensor } from "../backend.ts";
import type { OwnedStorage } from "../backend.ts";
import { gatherStrided } from "../_strided.ts";
import { contiguousStrides, type DType } from "../../core/tensor_desc.ts";

/** Typed array of a CPU tensor. */
export type HostArray = Float32Array | Float16Array;

/** CPU storage handle. */
export interface CpuStorage extends OwnedStorage {
  /** The elements; `released` storage throws on use. */
  readonly data: HostArray;
}

/** Allocates a host array of a dtype. */
export function hostArray(dtype: DType, length: number): HostArray {
  return dtype === "f16" ? new Float16Array(length) : new Float32Array(length);
}

/** The data behind a CPU tensor. */
export function dataOf(t: Tensor): HostArray {
  const storage = t.storage as CpuStorage;
  if (storage.released) {
    throw new TypeError("Cannot use tensor: its storage must be live, current state is released");
  }
  return storage.data;
}

/** Makes a contiguous CPU tensor over `data`, owned by the backend instance `owner`. */
export function cpuTensor(
  data: HostArray,
  shape: readonly number[],
  dtype: DType,
  owner: object,
): Tensor {
  return Object.freeze({
    backend: "cpu",
    storage: { owner, elements: data.length, data, released: false } satisfies CpuStorage,
    dtype,
    shape: Object.freeze([...shape]),
    strides: Object.freeze(contiguousStrides(shape)),
    offset: 0,
  });
}

/** Copies rows `[0, rows)` of head `(b, h)` of a rank-4 view into a row-major `rows × dim` block. */
export function gatherHead(t: Tensor, b: number, h: number): Float32Array {
  const [, , rows, dim] = t.shape;
  const [sb, sh, sn, sd] = t.strides;
  const head = {
    dtype: t.dtype,
    shape: [rows, dim],
    strides: [sn, sd],
    offset: t.offset + b * sb + h * sh,
  };
  return gatherStrided(dataOf(t), head, new Float32Array(rows * dim));
}
