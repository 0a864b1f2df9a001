/**
 * The float64 reference, written independently of the kernels: masks and score modifiers are
 * plain JS callbacks here (the arbitraries build each Expr together with its callback), and the
 * math is a direct softmax over every score. `naiveF32` is the same algorithm rounded to f32 at
 * each step: its error sets the tolerance of optimized kernels (DESIGN.md).
 * @module
 */
import type { SpecSizes } from "../core/spec.ts";

/** A reference problem: row-major data and plain-JS semantics. */
export interface OracleCase extends SpecSizes {
  /** `[B, Hq, Nq, D]`. */
  readonly q: ArrayLike<number>;
  /** `[B, Hkv, Nk, D]`. */
  readonly k: ArrayLike<number>;
  /** `[B, Hkv, Nk, Dv]`. */
  readonly v: ArrayLike<number>;
  readonly scale: number;
  readonly allowed?: (b: number, h: number, i: number, j: number) => boolean;
  readonly modify?: (s: number, b: number, h: number, i: number, j: number) => number;
  /** One sink logit per query head: a virtual key of that score and a zero value. */
  readonly sinks?: readonly number[];
}

/** Reference results. */
export interface OracleResult {
  readonly out: Float64Array;
  readonly lse: Float64Array;
  readonly probs: Float64Array;
}

function reference(c: OracleCase, round: (x: number) => number): OracleResult {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = c;
  const out = new Float64Array(batch * heads * qLen * valueDim);
  const lse = new Float64Array(batch * heads * qLen);
  const probs = new Float64Array(batch * heads * qLen * kvLen);
  const group = heads / kvHeads;
  const s = new Float64Array(kvLen);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < qLen; i++) {
        const qBase = ((b * heads + h) * qLen + i) * headDim;
        let max = -Infinity;
        for (let j = 0; j < kvLen; j++) {
          if (c.allowed && !c.allowed(b, h, i, j)) {
            s[j] = -Infinity;
            continue;
          }
          const kBase = ((b * kvHeads + kh) * kvLen + j) * headDim;
          let dot = 0;
          for (let d = 0; d < headDim; d++) {
            dot = round(dot + round(c.q[qBase + d] * c.k[kBase + d]));
          }
          let score = round(dot * c.scale);
          if (c.modify) score = round(c.modify(score, b, h, i, j));
          s[j] = score;
          max = Math.max(max, score);
        }
        const row = (b * heads + h) * qLen + i;
        // The sink joins the softmax as one more score whose value row is zero.
        const sink = c.sinks?.[h];
        const top = sink === undefined ? max : Math.max(max, sink);
        let sum = sink === undefined ? 0 : round(Math.exp(round(sink - top)));
        for (let j = 0; j < kvLen; j++) {
          s[j] = max === -Infinity ? 0 : round(Math.exp(round(s[j] - top)));
          sum = round(sum + s[j]);
        }
        lse[row] = sum > 0 ? top + Math.log(sum) : -Infinity;
        for (let j = 0; j < kvLen; j++) probs[row * kvLen + j] = sum > 0 ? round(s[j] / sum) : 0;
        for (let d = 0; d < valueDim; d++) {
          let acc = 0;
          for (let j = 0; j < kvLen; j++) {
            const vIdx = ((b * kvHeads + kh) * kvLen + j) * valueDim + d;
            acc = round(acc + round(probs[row * kvLen + j] * c.v[vIdx]));
          }
          out[row * valueDim + d] = acc;
        }
      }
    }
  }
  return { out, lse, probs };
}

/** Float64 reference attention. */
export function oracle(c: OracleCase): OracleResult {
  return reference(c, (x) => x);
}

/** The plain f32 materialized algorithm (every step rounded to f32). */
export function naiveF32(c: OracleCase): OracleResult {
  return reference(c, Math.fround);
}

/** Largest absolute difference (Infinity where exactly one side is non-finite or NaN). */
export function maxAbsError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] === expected[i]) continue;
    const e = Math.abs(actual[i] - expected[i]);
    worst = Math.max(worst, Number.isNaN(e) ? Infinity : e);
  }
  return worst;
}

/** DESIGN.md's tolerance: twice the plain f32 kernel's error, plus 1e-6. */
export function tolerance(c: OracleCase, ref: OracleResult = oracle(c)): number {
  return 2 * maxAbsError(naiveF32(c).out, ref.out) + 1e-6;
}

/** How a twin's `exp` errs within WGSL's bound: all high, or high and low in turn. */
export type ExpModel = "biased" | "alternating";

/** Both models: tolerances take the larger twin error, as neither bounds the other. */
export const EXP_MODELS: readonly ExpModel[] = ["biased", "alternating"];

/**
 * `exp` at the accuracy the WGSL spec gives its `exp`, `3 + 2·|x|` ULP, rather than the correctly
 * rounded `Math.exp`: each result that many ULP off, all high (`biased`: conforming ones may be,
 * llvmpipe's runs +1.6 ULP on average) or high and low in turn (`alternating`). Plain f32 twins of
 * WGSL kernels use both and count the larger error: alternating errors cancel in some sums
 * (a slope gradient over every pair) and a uniform bias cancels in others (softmax's normalization).
 */
export function wgslExp(model: ExpModel): (x: number) => number {
  let sign = -1;
  return (x) => {
    if (model === "alternating") sign = -sign;
    else sign = 1;
    return Math.exp(x) * (1 + sign * (3 + 2 * Math.abs(x)) * 2 ** -23);
  };
}
