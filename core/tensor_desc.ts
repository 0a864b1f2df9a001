/**
 * Tensor descriptors: dtype, shape, strides and offset, frozen. View operations return new
 * descriptors and never copy data; anything carrying these fields (a backend `Tensor`) keeps its
 * other fields through a view.
 * @module
 */

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
 * @throws {TypeError} If it is not "f32" or "f16".
 */
export function assertDType(dtype: unknown, field = "dtype"): asserts dtype is DType {
  if (!DTYPES.includes(dtype as DType)) {
    throw new TypeError(
      `Cannot use ${field}: must be one of ${DTYPES.join(", ")}, current value is ${String(dtype)}`,
    );
  }
}

function assertShape(shape: readonly number[]): void {
  shape.forEach((size, dim) => {
    if (!Number.isInteger(size) || size < 0) {
      throw new RangeError(
        `Cannot create tensor: shape[${dim}] must be a non-negative integer, current value is ${size}`,
      );
    }
  });
}

/** Row-major strides for a shape. */
export function contiguousStrides(shape: readonly number[]): number[] {
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
 * @throws {RangeError} If a size is not a non-negative integer.
 * @throws {TypeError} If the dtype is unknown.
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
    strides: Object.freeze(contiguousStrides(shape)),
    offset: 0,
  });
}

/** Number of elements a descriptor addresses. */
export function numel(desc: Pick<TensorDesc, "shape">): number {
  return desc.shape.reduce((a, b) => a * b, 1);
}

/** Whether a descriptor is row-major with no gaps (its offset may be non-zero). */
export function isContiguous(desc: TensorDesc): boolean {
  const expected = contiguousStrides(desc.shape);
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
  const rank = x.shape.length;
  const seen = new Set(axes);
  if (
    axes.length !== rank || seen.size !== rank ||
    axes.some((a) => !Number.isInteger(a) || a < 0 || a >= rank)
  ) {
    throw new RangeError(
      `Cannot permute: axes must be a permutation of 0..${rank - 1}, current value is [${axes}]`,
    );
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
  assertShape(shape);
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
  return view(x, [...shape], contiguousStrides(shape), x.offset);
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
  if (!Number.isInteger(dim) || dim < 0 || dim >= x.shape.length) {
    throw new RangeError(
      `Cannot slice: dim must be in 0..${x.shape.length - 1}, current value is ${dim}`,
    );
  }
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start) {
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
  assertShape(shape);
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

/** Largest element index a descriptor reaches, plus one (0 when empty). */
export function extent(desc: TensorDesc): number {
  if (numel(desc) === 0) return 0;
  return desc.shape.reduce((end, size, dim) => end + (size - 1) * desc.strides[dim], desc.offset) +
    1;
}
