/**
 * Host-side gather of a strided view into row-major order, shared by every backend's reads. It
 * copies whole contiguous runs (one typed-array `set` each; f16 widened through a table in the
 * same pass), so a contiguous tensor is a single copy and a permuted one a copy per inner row.
 * @module
 */
import { numel, type TensorDesc } from "../core/tensor_desc.ts";

/** Element storage a gather reads: f32 or f16. */
export type SourceArray = Float32Array | Float16Array;

/** Runs shorter than this are copied element by element: cheaper than a subarray. */
const SHORT_RUN = 16;

let f16Values: Float32Array | undefined;

/**
 * The f32 value of every f16 bit pattern. Widening through this table is several times faster
 * in V8 than a typed-array copy out of a Float16Array (bench/RESULTS.md).
 */
function f16Table(): Float32Array {
  f16Values ??= new Float32Array(
    new Float16Array(Uint16Array.from({ length: 65536 }, (_, i) => i).buffer),
  );
  return f16Values;
}

/**
 * A descriptor's dimensions with size-1 dimensions dropped and each dimension merged into the
 * one outside it where together they step evenly (a contiguous tensor becomes one dimension).
 */
export function mergedDims(desc: TensorDesc): { shape: number[]; strides: number[] } {
  const shape: number[] = [], strides: number[] = [];
  desc.shape.forEach((size, dim) => {
    if (size === 1) return;
    const stride = desc.strides[dim];
    const last = shape.length - 1;
    if (last >= 0 && strides[last] === size * stride) {
      shape[last] *= size;
      strides[last] = stride;
    } else {
      shape.push(size);
      strides.push(stride);
    }
  });
  return { shape, strides };
}

function copyRun(
  source: Float32Array,
  at: number,
  step: number,
  length: number,
  target: Float32Array,
  to: number,
): void {
  if (step === 0) target.fill(source[at], to, to + length);
  else if (step === 1 && length >= SHORT_RUN) target.set(source.subarray(at, at + length), to);
  else for (let i = 0; i < length; i++) target[to + i] = source[at + i * step];
}

function widenRun(
  bits: Uint16Array,
  at: number,
  step: number,
  length: number,
  target: Float32Array,
  to: number,
): void {
  const values = f16Table();
  if (step === 0) target.fill(values[bits[at]], to, to + length);
  else for (let i = 0; i < length; i++) target[to + i] = values[bits[at + i * step]];
}

/**
 * Copies the elements a descriptor addresses into `target` in row-major order.
 *
 * @param source Storage; element `e` of the descriptor's address space is `source[e - base]`.
 * @param desc The view.
 * @param target Receives `numel(desc)` elements.
 * @param base Address of `source[0]` (for a copy of part of the storage).
 * @returns `target`.
 */
export function gatherStrided(
  source: SourceArray,
  desc: TensorDesc,
  target: Float32Array,
  base = 0,
): Float32Array {
  const count = numel(desc);
  if (count === 0) return target;
  const { shape, strides } = mergedDims(desc);
  const start = desc.offset - base;
  if (shape.length === 0) {
    target[0] = source[start];
    return target;
  }
  const inner = shape.length - 1;
  const run = shape[inner], step = strides[inner];
  const index = new Array<number>(inner).fill(0);
  const bits = source instanceof Float16Array
    ? new Uint16Array(source.buffer, source.byteOffset, source.length)
    : undefined;
  let at = start;
  for (let to = 0; to < count; to += run) {
    if (bits) widenRun(bits, at, step, run, target, to);
    else copyRun(source as Float32Array, at, step, run, target, to);
    for (let dim = inner - 1; dim >= 0; dim--) {
      at += strides[dim];
      if (++index[dim] < shape[dim]) break;
      at -= strides[dim] * shape[dim];
      index[dim] = 0;
    }
  }
  return target;
}
