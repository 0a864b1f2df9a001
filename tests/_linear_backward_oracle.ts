/**
 * The float64 reference backward pass of linear attention, written by hand and independently of
 * the kernels: the quadratic form, `A_ij = M_ij·φ(q_i)·φ(k_j)` with `M_ij = γ^(p−j)` for the keys
 * row `i` sees, then per pair `dA_ij = (dO_i·v_j − dO_i·out_i) / den_i` (`dO_i·v_j` unnormalized),
 * `dv_j += A_ij·dO_i / den_i`, `dφ(q_i) += dA_ij·M_ij·φ(k_j)`, `dφ(k_j) += dA_ij·M_ij·φ(q_i)`,
 * `dγ += dA_ij·A_ij·(p − j)/γ`, and the feature map's hand-written pullback to q and k.
 * `naiveLinearBackwardF32` is the same algorithm rounded to f32 at every step, its `exp` and `pow`
 * as accurate as WGSL's must be: its error sets the tolerance of the kernels (DESIGN.md).
 * @module
 */
import type { LinearCase, RowMap, RowPullback } from "./_linear_oracle.ts";
import { EXP_MODELS, type ExpModel, maxAbsError, wgslExp } from "./_oracle.ts";

/** A reference problem with the feature map's pullback. */
export interface LinearBackwardCase extends LinearCase {
  readonly pullback: RowPullback;
  /**
   * The map and pullback as an f32 kernel computes them with an `exp` of WGSL's accuracy, every
   * step rounded (Performer's sums and `exp`): what the plain f32 twin uses. Absent: `phi` and
   * `pullback`, their results rounded.
   */
  readonly f32?: (exp: (x: number) => number) => {
    readonly phi: RowMap;
    readonly pullback: RowPullback;
  };
}

/** Reference gradients; `dDecay` per query head (zeros without a decay). */
export interface LinearBackwardResult {
  readonly out: Float64Array;
  readonly dq: Float64Array;
  readonly dk: Float64Array;
  readonly dv: Float64Array;
  readonly dDecay: Float64Array;
}

function rowOf(x: ArrayLike<number>, at: number, length: number): Float64Array {
  return Float64Array.from({ length }, (_, d) => x[at + d]);
}

function reference(
  c: LinearBackwardCase,
  dOut: ArrayLike<number>,
  round: (x: number) => number,
  exp?: (x: number) => number,
): LinearBackwardResult {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = c;
  const group = heads / kvHeads;
  const out = new Float64Array(batch * heads * qLen * valueDim);
  const dq = new Float64Array(batch * heads * qLen * headDim);
  const dk = new Float64Array(batch * kvHeads * kvLen * headDim);
  const dv = new Float64Array(batch * kvHeads * kvLen * valueDim);
  const dDecay = new Float64Array(heads);
  const { phi, pullback } = exp && c.f32 ? c.f32(exp) : c;
  // The f32 twin's γⁿ as WGSL's pow, exp2(n·log2 γ), at its specified accuracy (see wgslExp).
  const power = (g: number, n: number) => exp ? exp(n * Math.log(g)) : g ** n;
  const dot = (a: ArrayLike<number>, aAt: number, b: ArrayLike<number>, bAt: number, n: number) => {
    let s = 0;
    for (let d = 0; d < n; d++) s = round(s + round(a[aAt + d] * b[bAt + d]));
    return s;
  };
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kh = Math.floor(h / group);
      const gamma = c.decay?.[h] ?? 1;
      const kRows = Array.from(
        { length: kvLen },
        (_, j) => rowOf(c.k, ((b * kvHeads + kh) * kvLen + j) * headDim, headDim),
      );
      const phiK = kRows.map((x) => phi(x).map(round));
      const dPhiK = phiK.map((f) => new Float64Array(f.length));
      const vAt = (j: number) => ((b * kvHeads + kh) * kvLen + j) * valueDim;
      for (let i = 0; i < qLen; i++) {
        const p = kvLen - qLen + i;
        const seen = (j: number) => !c.causal || j <= p;
        const qRow = rowOf(c.q, ((b * heads + h) * qLen + i) * headDim, headDim);
        const phiQ = phi(qRow).map(round);
        const features = phiQ.length;
        const weight = new Float64Array(kvLen), a = new Float64Array(kvLen);
        const at = ((b * heads + h) * qLen + i) * valueDim;
        let den = 0;
        for (let j = 0; j < kvLen; j++) {
          if (!seen(j)) continue;
          weight[j] = c.causal ? round(power(gamma, p - j)) : 1;
          a[j] = round(weight[j] * dot(phiQ, 0, phiK[j], 0, features));
          den = round(den + a[j]);
          for (let d = 0; d < valueDim; d++) {
            out[at + d] = round(out[at + d] + round(a[j] * c.v[vAt(j) + d]));
          }
        }
        den = c.normalize ? round(den + c.epsilon) : 1;
        for (let d = 0; d < valueDim; d++) out[at + d] = round(out[at + d] / den);
        const dOutO = c.normalize ? dot(dOut, at, out, at, valueDim) : 0;
        const dPhiQ = new Float64Array(features);
        for (let j = 0; j < kvLen; j++) {
          if (!seen(j)) continue;
          const dA = round(round(dot(dOut, at, c.v, vAt(j), valueDim) - dOutO) / den);
          for (let d = 0; d < valueDim; d++) {
            dv[vAt(j) + d] = round(dv[vAt(j) + d] + round(round(a[j] * dOut[at + d]) / den));
          }
          const dw = round(dA * weight[j]);
          for (let f = 0; f < features; f++) {
            dPhiQ[f] = round(dPhiQ[f] + round(dw * phiK[j][f]));
            dPhiK[j][f] = round(dPhiK[j][f] + round(dw * phiQ[f]));
          }
          if (c.decay) dDecay[h] = round(dDecay[h] + round(round(dA * a[j]) * (p - j) / gamma));
        }
        const dqRow = pullback(qRow, dPhiQ);
        const qAt = ((b * heads + h) * qLen + i) * headDim;
        for (let d = 0; d < headDim; d++) dq[qAt + d] = round(dqRow[d]);
      }
      for (let j = 0; j < kvLen; j++) {
        const dkRow = pullback(kRows[j], dPhiK[j]);
        const kAt = ((b * kvHeads + kh) * kvLen + j) * headDim;
        for (let d = 0; d < headDim; d++) dk[kAt + d] = round(dk[kAt + d] + round(dkRow[d]));
      }
    }
  }
  return { out, dq, dk, dv, dDecay };
}

/** Float64 reference backward pass of linear attention. */
export function linearBackwardOracle(
  c: LinearBackwardCase,
  dOut: ArrayLike<number>,
): LinearBackwardResult {
  return reference(c, dOut, (x) => x);
}

/**
 * The plain f32 quadratic backward pass (every step rounded to f32), its `exp` and `pow` as
 * `model` lets a WGSL kernel's err.
 */
export function naiveLinearBackwardF32(
  c: LinearBackwardCase,
  dOut: ArrayLike<number>,
  model: ExpModel,
): LinearBackwardResult {
  return reference(c, dOut, Math.fround, wgslExp(model));
}

/** Gradient names with their reference arrays. */
export const LINEAR_GRADIENTS = ["dq", "dk", "dv", "dDecay"] as const;

/**
 * DESIGN.md's tolerance per gradient: twice the plain f32 backward's error (the larger of its two
 * `exp` models), plus 1e-6. `dDecay`,
 * one number per head summed over every row, also gets four f32 ulps of its size: a single f32
 * run lands within an ulp of it by luck as often as not, which says nothing of f32's error there
 * (1e-6 is below one ulp of a decay gradient of 10).
 */
export function linearBackwardTolerance(
  c: LinearBackwardCase,
  dOut: ArrayLike<number>,
  ref: LinearBackwardResult,
): Record<(typeof LINEAR_GRADIENTS)[number], number> {
  const twins = EXP_MODELS.map((model) => naiveLinearBackwardF32(c, dOut, model));
  const error = (n: (typeof LINEAR_GRADIENTS)[number]) =>
    Math.max(...twins.map((t) => maxAbsError(t[n], ref[n])));
  const ulps = (n: (typeof LINEAR_GRADIENTS)[number]) =>
    n === "dDecay" ? 2 ** -21 * Math.max(0, ...Array.from(ref.dDecay, Math.abs)) : 0;
  return Object.fromEntries(
    LINEAR_GRADIENTS.map((n) => [n, 2 * error(n) + 1e-6 + ulps(n)]),
  ) as Record<(typeof LINEAR_GRADIENTS)[number], number>;
}
