/**
 * Host-side gather of a strided view into row-major order, shared by every backend's `read`.
 * @module
 */
import { numel, type TensorDesc } from "../core/tensor_desc.ts";

/** Copies the elements a descriptor addresses in `data` into a row-major Float32Array. */
export function gatherStrided(data: ArrayLike<number>, desc: TensorDesc): Float32Array {
  const out = new Float32Array(numel(desc));
  const rank = desc.shape.length;
  const index = new Array<number>(rank).fill(0);
  for (let i = 0; i < out.length; i++) {
    let at = desc.offset;
    for (let dim = 0; dim < rank; dim++) at += index[dim] * desc.strides[dim];
    out[i] = data[at];
    for (let dim = rank - 1; dim >= 0; dim--) {
      if (++index[dim] < desc.shape[dim]) break;
      index[dim] = 0;
    }
  }
  return out;
}
