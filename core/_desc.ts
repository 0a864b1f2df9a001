/**
 * A descriptor's own fields, frozen: what specs keep of a tensor, so a tensor's storage never
 * enters a spec or a plan (plans are JSON).
 * @module
 */
import type { TensorDesc } from "./tensor_desc.ts";

/** The dtype, shape, strides and offset of `d` (a descriptor or a tensor), frozen. */
export function descOf(d: TensorDesc): TensorDesc {
  return Object.freeze({
    dtype: d.dtype,
    shape: Object.freeze([...d.shape]),
    strides: Object.freeze([...d.strides]),
    offset: d.offset,
  });
}
