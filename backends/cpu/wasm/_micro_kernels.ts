/**
 * The CPU backend's WebAssembly SIMD micro-kernels, written with the emitter at run time:
 *
 * - `gemm`: `C = alpha · A · B (+ C)`, register-blocked 4 rows × 8 columns (eight f32x4
 *   accumulators), the shape of both flash products: `S = Q · Kᵀ` (with Kᵀ packed per tile)
 *   and `O += P · V`. `m` must be a multiple of 4 and `n` of 8; callers pad.
 * - `softmax`: the online-softmax update of a score tile, row by row: tile maximum, `p =
 *   exp(s - max)` in place, running sums, and the rescale of the output rows.
 * - `widenF16`: f16 bit patterns to f32, four lanes at a time.
 *
 * With relaxed SIMD the products use `f32x4.relaxed_madd` (a fused multiply-add on hardware that
 * has one); otherwise a multiply then an add. Results on one machine do not depend on how work is
 * split, so threads give bit-identical answers.
 * @module
 */
import { encodeModule, FunctionWriter, type Local, type MemoryImport } from "./_emitter.ts";

/** Instruction sets the CPU backend can run its kernels with. */
export type CpuKernelPath = "wasm-relaxed-simd" | "wasm-simd" | "typescript";

/** The exported micro-kernels; pointers and leading dimensions are in bytes. */
export interface MicroKernels {
  gemm(
    a: number,
    lda: number,
    b: number,
    ldb: number,
    c: number,
    ldc: number,
    m: number,
    n: number,
    k: number,
    alpha: number,
    accumulate: number,
  ): void;
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

/** Rows and columns of the gemm register block. */
export const GEMM_ROWS = 4, GEMM_COLS = 8;

const LOG2E = 1.4426950408889634;
// ln 2 split so that n · LN2_HI is exact for the n that occur.
const LN2_HI = 0.693359375, LN2_LO = -2.12194440e-4;
// Below this exp(x) is under f32's smallest normal: the result is 0. Above the upper bound the
// exponent trick would overflow: the result is +Infinity.
const EXP_MIN = -87.33654, EXP_MAX = 88.37626;
// Degree-6 minimax polynomial for exp on [-ln2/2, ln2/2] (Cephes expf), error about 1 ulp.
const EXP_POLY = [
  1.9875691500e-4,
  1.3981999507e-3,
  8.3334519073e-3,
  4.1665795894e-2,
  1.6666665459e-1,
  5.0000001201e-1,
];

/**
 * Emits `exp` of the f32x4 in `x` into `x` (clobbering `t`, `n`): `2^n · p(r)` with `x = n·ln2 + r`.
 * NaN stays NaN; arguments below `EXP_MIN` give 0, above `EXP_MAX` +Infinity.
 */
function emitExp(f: FunctionWriter, x: Local, t: Local, n: Local): void {
  f.get(x).f32x4(LOG2E).simd("f32x4.mul").simd("f32x4.nearest").set(n);
  f.get(x).get(n).f32x4(LN2_HI).simd("f32x4.mul").simd("f32x4.sub");
  f.get(n).f32x4(LN2_LO).simd("f32x4.mul").simd("f32x4.sub").set(t); // r
  f.f32x4(EXP_POLY[0]);
  for (const c of EXP_POLY.slice(1)) f.get(t).simd("f32x4.mul").f32x4(c).simd("f32x4.add");
  f.get(t).get(t).simd("f32x4.mul").simd("f32x4.mul"); // p(r) · r²
  f.get(t).simd("f32x4.add").f32x4(1).simd("f32x4.add"); // + r + 1
  // 2^n from the exponent bits; trunc_sat maps NaN to 0, so NaN keeps its NaN mantissa product.
  f.get(n).simd("i32x4.trunc_sat_f32x4_s").i32x4(127).simd("i32x4.add").i32(23).simd("i32x4.shl");
  f.simd("f32x4.mul").set(t);
  // Underflow to 0, overflow to +Infinity.
  // bitselect(a, b, m) takes a's bits where m is set.
  f.i32x4(0).get(t).get(x).f32x4(EXP_MIN).simd("f32x4.lt").simd("v128.bitselect").set(t);
  f.f32x4(Infinity).get(t).get(x).f32x4(EXP_MAX).simd("f32x4.gt").simd("v128.bitselect").set(x);
}

/** Emits `acc = a · b + acc`, fused with relaxed SIMD. */
function emitMadd(f: FunctionWriter, relaxed: boolean, a: Local, b: Local, acc: Local): void {
  if (relaxed) f.get(a).get(b).get(acc).simd("f32x4.relaxed_madd").set(acc);
  else f.get(a).get(b).simd("f32x4.mul").get(acc).simd("f32x4.add").set(acc);
}

function gemm(relaxed: boolean): FunctionWriter {
  const f = new FunctionWriter(
    ["i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "f32", "i32"],
    [],
  );
  const [a, lda, b, ldb, c, ldc, m, n, k, alpha, accumulate] = f.params;
  const [i, j, kk, pb, pc] = f.locals("i32", 5);
  const rowPtr = f.locals("i32", GEMM_ROWS);
  const acc = f.locals("v128", GEMM_ROWS * 2);
  const [b0, b1, ar, scale] = f.locals("v128", 4);
  f.get(alpha).simd("f32x4.splat").set(scale);
  f.forRange(i, 0, m, GEMM_ROWS, () => {
    f.forRange(j, 0, n, GEMM_COLS, () => {
      for (const v of acc) f.i32x4(0).set(v);
      // Row pointers of A for this block; B's column block.
      f.get(a).get(i).get(lda).op("i32.mul").op("i32.add").set(rowPtr[0]);
      for (let r = 1; r < GEMM_ROWS; r++) {
        f.get(rowPtr[r - 1]).get(lda).op("i32.add").set(rowPtr[r]);
      }
      f.get(b).get(j).i32(4).op("i32.mul").op("i32.add").set(pb);
      f.forRange(kk, 0, k, 1, () => {
        f.get(pb).mem("v128.load").set(b0);
        f.get(pb).mem("v128.load", 16).set(b1);
        for (let r = 0; r < GEMM_ROWS; r++) {
          f.get(rowPtr[r]).mem("v128.load32_splat").set(ar);
          emitMadd(f, relaxed, ar, b0, acc[2 * r]);
          emitMadd(f, relaxed, ar, b1, acc[2 * r + 1]);
          f.addTo(rowPtr[r], 4);
        }
        f.addTo(pb, ldb);
      });
      // C block: scale, optionally add what is there, store.
      f.get(c).get(i).get(ldc).op("i32.mul").op("i32.add").get(j).i32(4).op("i32.mul");
      f.op("i32.add").set(pc);
      for (let r = 0; r < GEMM_ROWS; r++) {
        for (let h = 0; h < 2; h++) {
          const v = acc[2 * r + h];
          f.get(v).get(scale).simd("f32x4.mul").set(v);
          f.get(accumulate).if();
          f.get(v).get(pc).mem("v128.load", 16 * h).simd("f32x4.add").set(v);
          f.end();
          f.get(pc).get(v).mem("v128.store", 16 * h);
        }
        f.addTo(pc, ldc);
      }
    });
  });
  return f;
}

/** Emits a horizontal reduction of `v` with a binary f32 op, leaving an f32 on the stack. */
function emitHorizontal(f: FunctionWriter, v: Local, op: "f32.max" | "f32.add"): void {
  f.get(v).extractLane(0);
  for (let lane = 1; lane < 4; lane++) f.get(v).extractLane(lane).op(op);
}

function softmax(): FunctionWriter {
  const f = new FunctionWriter(["i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32"], []);
  const [s, lds, rows, count, stats, o, ldo, outVectors] = f.params;
  const [r, t, ps, pt, po, pst, vectors, padded] = f.locals("i32", 8);
  const [x, tmp, nn, vmax, vsum, vnew] = f.locals("v128", 6);
  const [mOld, mNew, rescale] = f.locals("f32", 3);
  // Vectors covering `count` columns; the tail of the last one is set to -Infinity.
  f.get(count).i32(3).op("i32.add").i32(2).op("i32.shr_u").tee(vectors).i32(2).op("i32.shl");
  f.set(padded);
  f.forRange(r, 0, rows, 1, () => {
    f.get(s).get(r).get(lds).op("i32.mul").op("i32.add").set(ps);
    f.get(count).set(t);
    f.block().loop().get(t).get(padded).op("i32.ge_u").brIf(1);
    f.get(ps).get(t).i32(2).op("i32.shl").op("i32.add").f32(-Infinity).mem("f32.store");
    f.addTo(t, 1).br(0).end().end();
    // Tile maximum; f32x4.max and f32.max keep NaN.
    f.f32x4(-Infinity).set(vmax).get(ps).set(pt);
    f.forRange(t, 0, vectors, 1, () => {
      f.get(vmax).get(pt).mem("v128.load").simd("f32x4.max").set(vmax).addTo(pt, 16);
    });
    f.get(stats).get(r).i32(3).op("i32.shl").op("i32.add").set(pst);
    f.get(pst).mem("f32.load").tee(mOld);
    emitHorizontal(f, vmax, "f32.max");
    f.op("f32.max").tee(mNew).simd("f32x4.splat").set(vnew);
    // p = exp(s - max) in place, summed.
    f.i32x4(0).set(vsum).get(ps).set(pt);
    f.forRange(t, 0, vectors, 1, () => {
      f.get(pt).mem("v128.load").get(vnew).simd("f32x4.sub").set(x);
      emitExp(f, x, tmp, nn);
      f.get(pt).get(x).mem("v128.store");
      f.get(vsum).get(x).simd("f32x4.add").set(vsum).addTo(pt, 16);
    });
    // Running statistics: sum · exp(old max - new max) + tile sum.
    f.get(mOld).get(mNew).op("f32.sub").simd("f32x4.splat").set(x);
    emitExp(f, x, tmp, nn);
    f.get(x).extractLane(0).set(rescale);
    f.get(pst).get(pst).mem("f32.load", 4).get(rescale).op("f32.mul");
    emitHorizontal(f, vsum, "f32.add");
    f.op("f32.add").mem("f32.store", 4);
    f.get(pst).get(mNew).mem("f32.store");
    // Output rows rescaled.
    f.get(rescale).simd("f32x4.splat").set(x);
    f.get(o).get(r).get(ldo).op("i32.mul").op("i32.add").set(po);
    f.forRange(t, 0, outVectors, 1, () => {
      f.get(po).get(po).mem("v128.load").get(x).simd("f32x4.mul").mem("v128.store").addTo(po, 16);
    });
  });
  return f;
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
 * The micro-kernel module's bytes for a memory import and instruction set.
 *
 * @param relaxed Whether to use relaxed SIMD fused multiply-adds.
 * @param memory How `env.memory` is imported.
 */
export function microKernelModule(relaxed: boolean, memory: MemoryImport): Uint8Array<ArrayBuffer> {
  return encodeModule([
    { name: "gemm", writer: gemm(relaxed) },
    { name: "softmax", writer: softmax() },
    { name: "widenF16", writer: widenF16() },
  ], memory);
}
