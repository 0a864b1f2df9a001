/**
 * The CPU backend's WebAssembly SIMD micro-kernels, written with the emitter at run time for one
 * flash shape (head dim and padded tile widths are compile-time constants):
 *
 * - `gemmScores` / `gemmValues`: the two flash products, `S = Q · Kᵀ · scale` (Kᵀ packed per
 *   tile) and `O += P · V` (see `_gemm.ts`).
 * - `softmax`: the online-softmax update of a score tile (see `_softmax.ts`).
 * - `widenF16`: f16 bit patterns to f32, four lanes at a time.
 *
 * With relaxed SIMD the products use `f32x4.relaxed_madd` (a fused multiply-add on hardware that
 * has one); otherwise a multiply then an add. Results on one machine do not depend on how work is
 * split, so threads give bit-identical answers.
 * @module
 */
import { encodeModule, FunctionWriter, type MemoryImport } from "./_emitter.ts";
import { gemm } from "./_gemm.ts";
import { softmax } from "./_softmax.ts";

/** Instruction sets the CPU backend can run its kernels with. */
export type CpuKernelPath = "wasm-relaxed-simd" | "wasm-simd" | "typescript";

/** A gemm with its strides built in; pointers in bytes. */
export type Gemm = (
  a: number,
  b: number,
  c: number,
  m: number,
  n: number,
  k: number,
  alpha: number,
  accumulate: number,
) => void;

/** The exported micro-kernels; pointers and leading dimensions are in bytes. */
export interface MicroKernels {
  readonly gemmScores: Gemm;
  readonly gemmValues: Gemm;
  softmax(
    s: number,
    lds: number,
    rows: number,
    count: number,
    stats: number,
    o: number,
    ldo: number,
    outVectors: number,
  ): void;
  widenF16(src: number, dst: number, count: number): void;
}

/** The sizes a module is specialized for: f32 elements per row of each operand. */
export interface KernelShape {
  readonly headDim: number;
  /** Columns of a score tile (padded). */
  readonly tileCols: number;
  /** Columns of a value row (padded). */
  readonly valueCols: number;
}

/** f16 bits to f32: `count` rounded up to a multiple of 4 is converted. */
function widenF16(): FunctionWriter {
  const f = new FunctionWriter(["i32", "i32", "i32"], []);
  const [src, dst, count] = f.params;
  const [i] = f.locals("i32", 1);
  const [x, em, shifted] = f.locals("v128", 3);
  f.forRange(i, 0, count, 4, () => {
    f.get(src).mem("v128.load16x4_u").set(x);
    f.get(x).i32x4(0x7fff).simd("v128.and").tee(em).i32(13).simd("i32x4.shl").set(shifted);
    // Inf/NaN keep their payload under an all-ones exponent; normals and subnormals are exact
    // after scaling by 2^(127 - 15).
    f.get(shifted).i32x4(0x7f800000).simd("v128.or");
    f.get(shifted).f32x4(2 ** 112).simd("f32x4.mul");
    f.get(em).i32x4(0x7bff).simd("i32x4.gt_u").simd("v128.bitselect");
    f.get(x).i32x4(0x8000).simd("v128.and").i32(16).simd("i32x4.shl").simd("v128.or").set(x);
    f.get(dst).get(x).mem("v128.store");
    f.addTo(src, 8).addTo(dst, 16);
  });
  return f;
}

/**
 * The micro-kernel module's bytes for an instruction set, memory import and shape.
 *
 * @param relaxed Whether to use relaxed SIMD fused multiply-adds.
 * @param memory How `env.memory` is imported.
 * @param shape The flash shape the gemms are specialized for.
 */
export function microKernelModule(
  relaxed: boolean,
  memory: MemoryImport,
  shape: KernelShape,
): Uint8Array<ArrayBuffer> {
  const { headDim, tileCols, valueCols } = shape;
  return encodeModule([
    {
      name: "gemmScores",
      writer: gemm(relaxed, { lda: 4 * headDim, ldb: 4 * tileCols, ldc: 4 * tileCols }),
    },
    {
      name: "gemmValues",
      writer: gemm(relaxed, { lda: 4 * tileCols, ldb: 4 * valueCols, ldc: 4 * valueCols }),
    },
    { name: "softmax", writer: softmax(relaxed) },
    { name: "widenF16", writer: widenF16() },
  ], memory);
}
