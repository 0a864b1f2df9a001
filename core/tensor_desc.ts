/**
 * Tensor descriptors: dtype, shape, strides and offset, frozen. View operations return new
 * descriptors and never copy data; anything carrying these fields (a backend `Tensor`) keeps its
 * other fields through a view.
 * @module
 */

import { assertArray, assertInteger, assertObject, assertOneOf, fail } from "./_check.ts";

/** Element types: f32 for compute and storage, f16 for storage only. */
export type DType = "f32" | "f16";

/** The dtypes accepted everywhere a dtype is named. */
export const DTYPES: readonly DType[] = Object.freeze(["f32", "f16"]);

/** A strided view of memory: element `[i0, i1, …]` lives at `offset + Σ iₖ·strides[k]`. */
export interface TensorDesc {
  /** Storage element type. */
  readonly dtype: DType;
  /** Size of each dimension. */
  readonly shape: readonly number[];
  /** Elements to step per index of each dimension (0 for broadcast dimensions). */
  readonly strides: readonly number[];
  /** Element offset of index `[0, 0, …]`. */
  readonly offset: number;
}

/**
 * Checks that a value is a known dtype.
 *
 * @param dtype The value.
 * @param field How the caller names it.
 * @param context What the caller cannot do otherwise.
 * @throws {TypeError} If it is not "f32" or "f16".
 * @example
 * ```ts
 * import { assertDType } from "@attend/attend/core";
 * import { assertThrows } from "@std/assert";
 * assertThrows(() => assertDType("f64"), TypeError, 'dtype must be one of "f32", "f16"');
 * ```
 */
export function assertDType(
  dtype: unknown,
  field = "dtype",
  context = "create tensor",
): asserts dtype is DType {
  assertOneOf(dtype, DTYPES, context, field);
}

/**
 * Checks a shape: an array of non-negative integers (each at most 2^53 - 1).
 *
 * @param shape The value.
 * @param context What the caller cannot do otherwise.
 * @param field How the caller names it.
 * @throws {TypeError} If `shape` is not an array, or an entry is not a number.
 * @throws {RangeError} If an entry is negative, fractional or NaN, naming its index.
 * @example
 * ```ts
 * import { assertShape } from "@attend/attend/core";
 * import { assertThrows } from "@std/assert";
 * assertThrows(() => assertShape([2, NaN]), RangeError, "shape[1] must be a non-negative integer, current value is NaN");
 * ```
 */
export function assertShape(
  shape: unknown,
  context = "create tensor",
  field = "shape",
): asserts shape is readonly number[] {
  assertArray(shape, context, field, "an array of non-negative integers");
  shape.forEach((size, dim) => assertInteger(size, context, `${field}[${dim}]`, 0));
}

/**
 * Checks that a value is a tensor descriptor (or a tensor): a known dtype, a shape, strides of the
 * same length (non-negative integers) and a non-negative integer offset.
 *
 * @param desc The value.
 * @param context What the caller cannot do otherwise.
 * @param field How the caller names it, e.g. "q".
 * @throws {TypeError} For a non-object or fields of the wrong kind.
 * @throws {RangeError} For out-of-range fields or strides of another length than the shape.
 * @example
 * ```ts
 * import { assertDesc, tensorDesc } from "@attend/attend/core";
 * import { assertThrows } from "@std/assert";
 * assertDesc(tensorDesc([2, 3]), "use view", "x");
 * assertThrows(() => assertDesc({ ...tensorDesc([2]), offset: -1 }, "use view", "x"), RangeError, "x.offset");
 * ```
 */
export function assertDesc(
  desc: unknown,
  context: string,
  field: string,
): asserts desc is TensorDesc {
  assertObject(desc, context, field, "a tensor or tensor descriptor");
  assertDType(desc.dtype, `${field}.dtype`, context);
  assertShape(desc.shape, context, `${field}.shape`);
  assertArray(desc.strides, context, `${field}.strides`, "an array of non-negative integers");
  if (desc.strides.length !== desc.shape.length) {
    fail(
      "range",
      context,
      `${field}.strides.length`,
      `${desc.shape.length} (the rank)`,
      desc.strides.length,
    );
  }
  desc.strides.forEach((s, dim) => assertInteger(s, context, `${field}.strides[${dim}]`, 0));
  assertInteger(desc.offset, context, `${field}.offset`, 0);
}

/**
 * Row-major strides for a shape.
 *
 * @param shape Size of each dimension.
 * @returns The strides.
 * @throws {TypeError} / {RangeError} For a malformed shape.
 * @example
 * ```ts
 * import { contiguousStrides } from "@attend/attend/core";
 * if (contiguousStrides([2, 3, 4]).join() !== "12,4,1") throw new Error("row-major");
 * ```
 */
export function contiguousStrides(shape: readonly number[]): number[] {
  assertShape(shape);
  return stridesOf(shape);
}

function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let step = 1;
  for (let dim = shape.length - 1; dim >= 0; dim--) {
    strides[dim] = step;
    step *= shape[dim];
  }
  return strides;
}

/**
 * Makes a frozen row-major descriptor.
 *
 * @param shape Size of each dimension.
 * @param dtype Storage type, "f32" by default.
 * @returns The descriptor, offset 0.
 * @throws {RangeError} If a size is negative, fractional or NaN, naming its index.
 * @throws {TypeError} If `shape` is not an array of numbers or the dtype is unknown.
 * @example
 * ```ts
 * import { tensorDesc } from "@attend/attend/core";
 * const d = tensorDesc([2, 3]);
 * if (d.strides.join() !== "3,1") throw new Error("row-major expected");
 * ```
 */
export function tensorDesc(shape: readonly number[], dtype: DType = "f32"): TensorDesc {
  assertShape(shape);
  assertDType(dtype);
  return Object.freeze({
    dtype,
    shape: Object.freeze([...shape]),
    strides: Object.freeze(stridesOf(shape)),
    offset: 0,
  });
}

/**
 * Number of elements a shape (or descriptor) addresses.
 *
 * @param desc Anything with a `shape`.
 * @returns The product of the sizes.
 * @throws {TypeError} / {RangeError} For a malformed shape.
 * @example
 * ```ts
 * import { numel, tensorDesc } from "@attend/attend/core";
 * if (numel(tensorDesc([2, 0, 3])) !== 0) throw new Error("empty");
 * ```
 */
export function numel(desc: Pick<TensorDesc, "shape">): number {
  assertObject(desc, "count elements", "desc", "an object with a shape");
  assertShape(desc.shape, "count elements", "desc.shape");
  return desc.shape.reduce((a, b) => a * b, 1);
}

/**
 * Whether a descriptor is row-major with no gaps (its offset may be non-zero).
 *
 * @param desc The descriptor.
 * @returns True if a reshape of it needs no copy.
 * @throws {TypeError} / {RangeError} For a malformed descriptor.
 * @example
 * ```ts
 * import { isContiguous, permute, tensorDesc } from "@attend/attend/core";
 * if (isContiguous(permute(tensorDesc([2, 3]), [1, 0]))) throw new Error("transposed");
 * ```
 */
export function isContiguous(desc: TensorDesc): boolean {
  assertDesc(desc, "inspect tensor", "desc");
  const expected = stridesOf(desc.shape);
  return desc.shape.every((size, dim) => size === 1 || desc.strides[dim] === expected[dim]);
}

function view<T extends TensorDesc>(x: T, shape: number[], strides: number[], offset: number): T {
  return Object.freeze({
    ...x,
    shape: Object.freeze(shape),
    strides: Object.freeze(strides),
    offset,
  });
}

/**
 * Reorders dimensions without copying.
 *
 * @param x A descriptor or tensor.
 * @param axes A permutation of `0 … rank-1`: output dimension `i` is input dimension `axes[i]`.
 * @returns The permuted view.
 * @throws {RangeError} If `axes` is not a permutation of the dimensions.
 * @example
 * ```ts
 * import { permute, tensorDesc } from "@attend/attend/core";
 * const bnhd = tensorDesc([1, 5, 2, 8]);
 * const bhnd = permute(bnhd, [0, 2, 1, 3]);
 * if (bhnd.shape.join() !== "1,2,5,8") throw new Error("wrong shape");
 * ```
 */
export function permute<T extends TensorDesc>(x: T, axes: readonly number[]): T {
  assertDesc(x, "permute", "x");
  const rank = x.shape.length;
  assertArray(axes, "permute", "axes", `a permutation of 0..${rank - 1}`);
  if (
    axes.length !== rank || new Set(axes).size !== rank ||
    axes.some((a) => !Number.isInteger(a) || a < 0 || a >= rank)
  ) {
    fail("range", "permute", "axes", `a permutation of 0..${rank - 1}`, axes);
  }
  return view(x, axes.map((a) => x.shape[a]), axes.map((a) => x.strides[a]), x.offset);
}

/**
 * Gives contiguous data a new shape without copying.
 *
 * @param x A contiguous descriptor or tensor.
 * @param shape The new shape; its element count must match.
 * @returns The reshaped view.
 * @throws {RangeError} If the element count differs or `x` is not contiguous.
 * @example
 * ```ts
 * import { reshape, tensorDesc } from "@attend/attend/core";
 * const d = reshape(tensorDesc([6]), [2, 3]);
 * if (d.strides.join() !== "3,1") throw new Error("wrong strides");
 * ```
 */
export function reshape<T extends TensorDesc>(x: T, shape: readonly number[]): T {
  assertDesc(x, "reshape", "x");
  assertShape(shape, "reshape");
  if (numel({ shape }) !== numel(x)) {
    throw new RangeError(
      `Cannot reshape: element count must stay ${numel(x)}, current value is ${
        numel({ shape })
      } for shape [${shape}]`,
    );
  }
  if (!isContiguous(x)) {
    throw new RangeError(
      `Cannot reshape: data must be contiguous, current strides are [${x.strides}]`,
    );
  }
  return view(x, [...shape], stridesOf(shape), x.offset);
}

/**
 * Takes `[start, end)` along one dimension without copying.
 *
 * @param x A descriptor or tensor.
 * @param dim The dimension to slice.
 * @param start First index kept.
 * @param end One past the last index kept.
 * @returns The sliced view.
 * @throws {RangeError} If `dim`, `start` or `end` is out of range.
 * @example
 * ```ts
 * import { slice, tensorDesc } from "@attend/attend/core";
 * const d = slice(tensorDesc([4, 3]), 0, 1, 3);
 * if (d.offset !== 3 || d.shape[0] !== 2) throw new Error("wrong view");
 * ```
 */
export function slice<T extends TensorDesc>(x: T, dim: number, start: number, end: number): T {
  assertDesc(x, "slice", "x");
  assertInteger(dim, "slice", "dim", 0, x.shape.length - 1);
  assertInteger(start, "slice", "start", 0);
  assertInteger(end, "slice", "end", 0);
  if (end < start) {
    throw new RangeError(
      `Cannot slice: need 0 <= start <= end, current value is [${start}, ${end})`,
    );
  }
  if (end > x.shape[dim]) {
    throw new RangeError(
      `Cannot slice: end must be at most shape[${dim}] = ${x.shape[dim]}, current value is ${end}`,
    );
  }
  const shape = [...x.shape];
  shape[dim] = end - start;
  return view(x, shape, [...x.strides], x.offset + start * x.strides[dim]);
}

/**
 * Repeats size-1 dimensions to a larger shape with stride 0, without copying.
 *
 * @param x A descriptor or tensor of the same rank.
 * @param shape Target shape; each dimension equals the input's or the input's is 1.
 * @returns The broadcast view.
 * @throws {RangeError} If the ranks differ or a dimension cannot broadcast.
 * @example
 * ```ts
 * import { broadcast, tensorDesc } from "@attend/attend/core";
 * const d = broadcast(tensorDesc([1, 4]), [3, 4]);
 * if (d.strides[0] !== 0) throw new Error("expected stride 0");
 * ```
 */
export function broadcast<T extends TensorDesc>(x: T, shape: readonly number[]): T {
  assertDesc(x, "broadcast", "x");
  assertShape(shape, "broadcast");
  if (shape.length !== x.shape.length) {
    throw new RangeError(
      `Cannot broadcast: rank must be ${x.shape.length}, current value is ${shape.length}`,
    );
  }
  const strides = shape.map((size, dim) => {
    if (x.shape[dim] === size) return x.strides[dim];
    if (x.shape[dim] === 1) return 0;
    throw new RangeError(
      `Cannot broadcast: shape[${dim}] is ${x.shape[dim]}, current target is ${size}`,
    );
  });
  return view(x, [...shape], strides, x.offset);
}

/**
 * Largest element index a descriptor reaches, plus one (0 when empty).
 *
 * @param desc The descriptor.
 * @returns The elements its storage needs.
 * @throws {TypeError} / {RangeError} For a malformed descriptor.
 * @example
 * ```ts
 * import { extent, slice, tensorDesc } from "@attend/attend/core";
 * if (extent(slice(tensorDesc([4, 3]), 0, 1, 2)) !== 6) throw new Error("row 1 ends at 6");
 * ```
 */
export function extent(desc: TensorDesc): number {
  assertDesc(desc, "measure tensor", "desc");
  if (desc.shape.includes(0)) return 0;
  return desc.shape.reduce((end, size, dim) => end + (size - 1) * desc.strides[dim], desc.offset) +
    1;
}
