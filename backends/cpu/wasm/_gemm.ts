/**
 * The gemm micro-kernel generator: `C = alpha · A · B (+ C)` over f32, register-blocked
 * `GEMM_ROWS × GEMM_COLS` (eight f32x4 accumulators, within x64's sixteen vector registers).
 * Leading dimensions are compile-time constants, so every A, B and C access is one pointer plus
 * a constant offset, and the k loop is unrolled by four. `m` must be a multiple of `GEMM_ROWS`
 * and `n` of `GEMM_COLS`; callers pad.
 * @module
 */
import { FunctionWriter, type Local } from "./_emitter.ts";

/** Rows and columns of the register block. */
export const GEMM_ROWS = 4, GEMM_COLS = 8;

/** Leading dimensions of a gemm, in bytes. */
export interface GemmStrides {
  readonly lda: number;
  readonly ldb: number;
  readonly ldc: number;
}

const UNROLL = 4;

/** Emits `acc = a · b + acc`, fused with relaxed SIMD. */
function emitMadd(
  f: FunctionWriter,
  relaxed: boolean,
  a: Local,
  b: Local,
  acc: Local,
): void {
  if (relaxed) f.get(a).get(b).get(acc).simd("f32x4.relaxed_madd").set(acc);
  else f.get(a).get(b).simd("f32x4.mul").get(acc).simd("f32x4.add").set(acc);
}

/**
 * A gemm function `(a, b, c, m, n, k, alpha, accumulate)` for fixed strides; pointers in bytes.
 *
 * @param relaxed Whether to fuse multiply-adds (relaxed SIMD).
 * @param strides The leading dimensions of A, B and C.
 */
export function gemm(relaxed: boolean, strides: GemmStrides): FunctionWriter {
  const { lda, ldb, ldc } = strides;
  const f = new FunctionWriter(["i32", "i32", "i32", "i32", "i32", "i32", "f32", "i32"], []);
  const [a, b, c, m, n, k, alpha, accumulate] = f.params;
  const [i, j, pa, pb, pc, end, kMain] = f.locals("i32", 7);
  const acc = f.locals("v128", GEMM_ROWS * 2);
  const [b0, b1, ar, scale] = f.locals("v128", 4);
  /** One k step at `step` elements past `pa`/`pb`. */
  const step = (s: number) => {
    f.get(pb).mem("v128.load", s * ldb).set(b0);
    f.get(pb).mem("v128.load", s * ldb + 16).set(b1);
    for (let r = 0; r < GEMM_ROWS; r++) {
      f.get(pa).mem("v128.load32_splat", r * lda + 4 * s).set(ar);
      emitMadd(f, relaxed, ar, b0, acc[2 * r]);
      emitMadd(f, relaxed, ar, b1, acc[2 * r + 1]);
    }
  };
  f.get(alpha).simd("f32x4.splat").set(scale);
  f.get(k).i32(-UNROLL).op("i32.and").set(kMain);
  f.forRange(i, 0, m, GEMM_ROWS, () => {
    f.forRange(j, 0, n, GEMM_COLS, () => {
      for (const v of acc) f.i32x4(0).set(v);
      f.get(a).get(i).i32(lda).op("i32.mul").op("i32.add").set(pa);
      f.get(b).get(j).i32(4).op("i32.mul").op("i32.add").set(pb);
      // Main loop, four k steps per pass; then the remainder one at a time.
      f.get(pa).get(kMain).i32(4).op("i32.mul").op("i32.add").set(end);
      f.block().get(pa).get(end).op("i32.ge_u").brIf(0).loop();
      for (let s = 0; s < UNROLL; s++) step(s);
      f.addTo(pa, 4 * UNROLL).addTo(pb, ldb * UNROLL);
      f.get(pa).get(end).op("i32.lt_u").brIf(0).end().end();
      f.get(end).get(k).get(kMain).op("i32.sub").i32(4).op("i32.mul").op("i32.add").set(end);
      f.block().get(pa).get(end).op("i32.ge_u").brIf(0).loop();
      step(0);
      f.addTo(pa, 4).addTo(pb, ldb);
      f.get(pa).get(end).op("i32.lt_u").brIf(0).end().end();
      // C block: scale, optionally add what is there, store.
      f.get(c).get(i).i32(ldc).op("i32.mul").op("i32.add").get(j).i32(4).op("i32.mul");
      f.op("i32.add").set(pc);
      for (let r = 0; r < GEMM_ROWS; r++) {
        for (let h = 0; h < 2; h++) {
          const v = acc[2 * r + h], at = r * ldc + 16 * h;
          f.get(v).get(scale).simd("f32x4.mul").set(v);
          f.get(accumulate).if().get(v).get(pc).mem("v128.load", at).simd("f32x4.add").set(v).end();
          f.get(pc).get(v).mem("v128.store", at);
        }
      }
    });
  });
  return f;
}
