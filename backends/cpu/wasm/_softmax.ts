/**
 * The online-softmax micro-kernel and its SIMD `exp`.
 * @module
 */
import { FunctionWriter, type Local } from "./_emitter.ts";

const LOG2E = 1.4426950408889634;
// ln 2 split so that n · LN2_HI is exact for the n that occur.
const LN2_HI = 0.693359375, LN2_LO = -2.12194440e-4;
// Adding 1.5 · 2^23 rounds to an integer and leaves it in the low mantissa bits.
const ROUNDER = 12582912;
// Below this exp(x) is under f32's smallest normal: the result is 0.
const EXP_MIN = -87.33654;
// Degree-6 minimax polynomial for exp on [-ln2/2, ln2/2] (Cephes expf), error about 1 ulp.
const EXP_POLY = [
  1.9875691500e-4,
  1.3981999507e-3,
  8.3334519073e-3,
  4.1665795894e-2,
  1.6666665459e-1,
  5.0000001201e-1,
];

/** Locals of `emitExp`: scratch vectors and its constants, loaded once per call. */
export interface ExpLocals {
  readonly t: Local;
  readonly n: Local;
  readonly p: Local;
  readonly coeff: readonly Local[];
  readonly constants: Readonly<Record<keyof typeof EXP_CONSTANTS, Local>>;
}

const EXP_CONSTANTS = {
  log2e: LOG2E,
  rounder: ROUNDER,
  ln2Hi: LN2_HI,
  ln2Lo: LN2_LO,
  one: 1,
  min: EXP_MIN,
};

/**
 * Declares the locals `emitExp` uses and loads its constants (V8 rebuilds a `v128.const` at
 * every use; a local stays in a register or is one memory operand).
 */
function expLocals(f: FunctionWriter): ExpLocals {
  const [t, n, p] = f.locals("v128", 3);
  const coeff = f.locals("v128", EXP_POLY.length);
  EXP_POLY.forEach((c, i) => f.f32x4(c).set(coeff[i]));
  const constants = Object.fromEntries(
    Object.entries(EXP_CONSTANTS).map(([name, value]) => {
      const local = f.local("v128");
      f.f32x4(value).set(local);
      return [name, local];
    }),
  ) as ExpLocals["constants"];
  return { t, n, p, coeff, constants };
}

/** Emits `acc = acc · x + c` (fused with relaxed SIMD). */
function emitHornerStep(f: FunctionWriter, relaxed: boolean, acc: Local, x: Local, c: Local): void {
  if (relaxed) f.get(acc).get(x).get(c).simd("f32x4.relaxed_madd").set(acc);
  else f.get(acc).get(x).simd("f32x4.mul").get(c).simd("f32x4.add").set(acc);
}

/**
 * Emits `x = exp(x)` on an f32x4 for `x <= 0` (softmax's `s - max`): `2^n · p(r)` with
 * `x = n·ln2 + r`. About 1 ulp; NaN stays NaN; arguments below `EXP_MIN` (and -Infinity) give 0.
 */
function emitExp(f: FunctionWriter, relaxed: boolean, x: Local, s: ExpLocals): void {
  const { t, n, p, coeff } = s;
  const c = s.constants;
  // n = round(x · log2 e), as a float after subtracting the rounder, as an integer in n's bits.
  f.get(x).get(c.log2e).simd("f32x4.mul").get(c.rounder).simd("f32x4.add").set(n);
  f.get(n).get(c.rounder).simd("f32x4.sub").set(t);
  if (relaxed) {
    // r = x - n·ln2_hi - n·ln2_lo as two negated multiply-adds.
    f.get(t).get(c.ln2Hi).get(x).simd("f32x4.relaxed_nmadd");
    f.set(p).get(t).get(c.ln2Lo).get(p).simd("f32x4.relaxed_nmadd").set(t);
  } else {
    f.get(x).get(t).get(c.ln2Hi).simd("f32x4.mul").simd("f32x4.sub");
    f.get(t).get(c.ln2Lo).simd("f32x4.mul").simd("f32x4.sub").set(t); // r
  }
  f.get(coeff[0]).set(p);
  for (const k of coeff.slice(1)) emitHornerStep(f, relaxed, p, t, k);
  // p(r) · r² + r + 1
  f.get(p).get(t).get(t).simd("f32x4.mul").simd("f32x4.mul").get(t).simd("f32x4.add");
  f.get(c.one).simd("f32x4.add");
  // · 2^n: the integer in n's low bits shifted into the exponent (the rounder's bits fall off),
  // plus the bias 127 << 23, which is 1.0's bit pattern.
  f.get(n).i32(23).simd("i32x4.shl").get(c.one).simd("i32x4.add").simd("f32x4.mul").set(p);
  // Underflow (and -Infinity) to 0.
  f.get(p).get(x).get(c.min).simd("f32x4.lt").simd("v128.andnot").set(x);
}

/** Emits a horizontal reduction of `v` with a binary f32 op, leaving an f32 on the stack. */
function emitHorizontal(f: FunctionWriter, v: Local, op: "f32.max" | "f32.add"): void {
  f.get(v).extractLane(0);
  for (let lane = 1; lane < 4; lane++) f.get(v).extractLane(lane).op(op);
}

/**
 * The online-softmax update of one score tile `(s, lds, rows, count)`: per row, the tile
 * maximum, `p = exp(s - max)` in place (columns past `count` become 0), the running maximum and
 * sum in `stats` (`[max, sum]` per row), and the output row `o` (`outVectors` f32x4) rescaled.
 */
export function softmax(relaxed: boolean): FunctionWriter {
  const f = new FunctionWriter(["i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32"], []);
  const [s, lds, rows, count, stats, o, ldo, outVectors] = f.params;
  const [r, t, ps, pt, po, pst, vectors, padded] = f.locals("i32", 8);
  const [x, vmax, vsum, vnew] = f.locals("v128", 4);
  const exp = expLocals(f);
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
      emitExp(f, relaxed, x, exp);
      f.get(pt).get(x).mem("v128.store");
      f.get(vsum).get(x).simd("f32x4.add").set(vsum).addTo(pt, 16);
    });
    // Running statistics: sum · exp(old max - new max) + tile sum.
    f.get(mOld).get(mNew).op("f32.sub").simd("f32x4.splat").set(x);
    emitExp(f, relaxed, x, exp);
    f.get(x).extractLane(0).set(rescale);
    f.get(pst).get(pst).mem("f32.load", 4).get(rescale).op("f32.mul");
    emitHorizontal(f, vsum, "f32.add");
    f.op("f32.add").mem("f32.store", 4);
    f.get(pst).get(mNew).mem("f32.store");
    // Output rows rescaled, unless the maximum stayed (most tiles after the first few).
    f.get(rescale).f32(1).op("f32.ne").if();
    f.get(rescale).simd("f32x4.splat").set(x);
    f.get(o).get(r).get(ldo).op("i32.mul").op("i32.add").set(po);
    f.forRange(t, 0, outVectors, 1, () => {
      f.get(po).get(po).mem("v128.load").get(x).simd("f32x4.mul").mem("v128.store").addTo(po, 16);
    });
    f.end();
  });
  return f;
}
