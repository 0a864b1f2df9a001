/**
 * Uploads host data into a storage buffer: data already in the storage type goes to
 * `queue.writeBuffer` as it is, other data is converted once.
 * @module
 */
import type { DType } from "../../core/tensor_desc.ts";

/** The data as the storage type's typed array: itself when it already is one. */
function storageArray(data: ArrayLike<number>, dtype: DType): Float32Array | Float16Array {
  if (dtype === "f16") return data instanceof Float16Array ? data : Float16Array.from(data);
  return data instanceof Float32Array ? data : Float32Array.from(data);
}

/**
 * Writes `data` into the start of `buffer` as `dtype` elements. `writeBuffer` takes whole
 * 4-byte words, so an odd f16 count writes its last element through a padded pair.
 *
 * @param queue The device's queue.
 * @param buffer A buffer of at least the data's size rounded up to 4 bytes.
 * @param data The elements.
 * @param dtype The storage type.
 */
export function writeElements(
  queue: GPUQueue,
  buffer: GPUBuffer,
  data: ArrayLike<number>,
  dtype: DType,
): void {
  const host = storageArray(data, dtype);
  const whole = dtype === "f16" ? host.length & ~1 : host.length;
  if (whole > 0) queue.writeBuffer(buffer, 0, host, 0, whole);
  if (whole < host.length) {
    queue.writeBuffer(buffer, whole * 2, Float16Array.of(host[whole], 0));
  }
}
