/**
 * The float64 reference backward pass, written by hand and independently of the kernels: the
 * full probability matrix of each row, `D_i = Σ_j P_ij·dP_ij` (not the kernels' `dO·O`), the
 * modifier's derivatives as plain callbacks. `naiveBackwardF32` is the same algorithm rounded to
 * f32 at every step: its error sets the tolerance of optimized kernels (DESIGN.md).
 * @module
 */
import { EXP_MODELS, type ExpModel, maxAbsError, type OracleCase, wgslExp } from "./_oracle.ts";

/** A reference problem with the modifier's derivatives. */
export interface BackwardCase extends OracleCase {
  /** `∂modify/∂s` at the raw score `s`. */
  readonly dModify?: (s: number, b: number, h: number, i: number, j: number) => number;
  /** `∂modify/∂slope[h]` at the raw score `s` (ALiBi-like parameters), one per head. */
  readonly dSlope?: (s: number, b: number, h: number, i: number, j: number) => number;
}

/** Reference gradients. */
export interface BackwardResult {
  readonly out: Float64Array;
  readonly dq: Float64Array;
  readonly dk: Float64Array;
  readonly dv: Float64Array;
  readonly dSinks: Float64Array;
  readonly dSlopes: Float64Array;
  /**
   * Per head, `3·sqrt(Σ_i (δD_i·Σ_j P_ij·|∂mod/∂slope_ij|)²)` with `δD_i = 2·√Dv·2⁻²⁴·Σ_d |dO_id·O_id|`,
   * the typical f32 rounding of the reduction `D_i = rowsum(dO ∘ O)`, rows independent: what one
   * f32 reduction of `D` may add to a slope gradient whatever its order (a single twin can cancel it exactly by luck, as where
   * one key makes `O = V` and `dP − D` vanishes when both sums run alike).
   */
  readonly dSlopesRounding: Float64Array;
}

/** How the plain f32 twin models the kernel it sets the tolerance of. */
export interface TwinOptions {
  /**
   * The output `[B, Hq, Nq, Dv]` and log-sum-exp `[B, Hq, Nq]` the kernel's forward saved: the
   * twin reads them as a backward pass over saved state does (`P = exp(s − lse)`,
   * `D = rowsum(dO ∘ O)`), so its error includes theirs.
   */
  readonly saved?: { readonly out: ArrayLike<number>; readonly lse: ArrayLike<number> };
  /**
   * Model WGSL's `exp`, whose accuracy the WGSL spec gives as `3 + 2·|x|` ULP rather than the
   * correctly rounded `Math.exp` (see `wgslExp`): the tolerance takes the larger error of both
   * models.
   */
  readonly wgslExp?: boolean;
}

function reference(
  c: BackwardCase,
  dOut: ArrayLike<number>,
  round: (x: number) => number,
  twin: TwinOptions & { readonly exp?: (x: number) => number } = {},
): BackwardResult {
  const { saved } = twin;
  const exp = twin.exp ?? Math.exp;
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim, scale } = c;
  const group = heads / kvHeads;
  const out = new Float64Array(batch * heads * qLen * valueDim);
  const dq = new Float64Array(batch * heads * qLen * headDim);
  const dk = new Float64Array(batch * kvHeads * kvLen * headDim);
  const dv = new Float64Array(batch * kvHeads * kvLen * valueDim);
  const dSinks = new Float64Array(heads), dSlopes = new Float64Array(heads);
  const dSlopesRounding = new Float64Array(heads);
  const raw = new Float64Array(kvLen), p = new Float64Array(kvLen), dp = new Float64Array(kvLen);
  const seen = new Uint8Array(kvLen);
  const qAt = (b: number, h: number, i: number) => ((b * heads + h) * qLen + i);
  const kAt = (b: number, h: number, j: number) => ((b * kvHeads + h) * kvLen + j);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < qLen; i++) {
        const row = qAt(b, h, i);
        // Scores, modified, and the row's log-sum-exp with the sink in the denominator.
        let max = c.sinks?.[h] ?? -Infinity;
        for (let j = 0; j < kvLen; j++) {
          seen[j] = !c.allowed || c.allowed(b, h, i, j) ? 1 : 0;
          if (!seen[j]) continue;
          let dot = 0;
          for (let d = 0; d < headDim; d++) {
            dot = round(dot + round(c.q[row * headDim + d] * c.k[kAt(b, kh, j) * headDim + d]));
          }
          raw[j] = round(dot * scale);
          p[j] = c.modify ? round(c.modify(raw[j], b, h, i, j)) : raw[j];
          max = Math.max(max, p[j]);
        }
        if (!seen.some((x) => x === 1)) continue;
        let sum = c.sinks ? round(exp(round(c.sinks[h] - max))) : 0;
        for (let j = 0; j < kvLen; j++) if (seen[j]) sum = round(sum + round(exp(p[j] - max)));
        // From a saved log-sum-exp, P = exp(s − lse) as the kernels recompute it.
        const lse = saved ? saved.lse[row] : max + Math.log(sum);
        for (let j = 0; j < kvLen; j++) {
          p[j] = !seen[j]
            ? 0
            : saved
            ? round(exp(round(p[j] - lse)))
            : round(exp(p[j] - max) / sum);
        }
        // Forward output, dP and D.
        let delta = 0;
        for (let j = 0; j < kvLen; j++) {
          if (!seen[j]) continue;
          let dot = 0;
          for (let d = 0; d < valueDim; d++) {
            const vd = c.v[kAt(b, kh, j) * valueDim + d];
            out[row * valueDim + d] = round(out[row * valueDim + d] + round(p[j] * vd));
            dot = round(dot + round(dOut[row * valueDim + d] * vd));
          }
          dp[j] = dot;
          delta = round(delta + round(p[j] * dot));
        }
        if (saved) {
          // D = rowsum(dO ∘ O) from the saved output, as the kernels read it.
          delta = 0;
          for (let d = 0; d < valueDim; d++) {
            delta = round(delta + round(dOut[row * valueDim + d] * saved.out[row * valueDim + d]));
          }
        }
        let deltaBound = 0;
        for (let d = 0; d < valueDim; d++) {
          deltaBound += Math.abs(
            dOut[row * valueDim + d] * (saved ?? { out }).out[row * valueDim + d],
          );
        }
        deltaBound *= 2 * Math.sqrt(valueDim) * 2 ** -24;
        let rowWeight = 0;
        if (c.sinks) {
          const pSink = saved
            ? round(exp(round(c.sinks[h] - lse)))
            : round(exp(round(c.sinks[h] - max)) / sum);
          dSinks[h] = round(dSinks[h] - round(pSink * delta));
        }
        for (let j = 0; j < kvLen; j++) {
          if (!seen[j]) continue;
          const dsMod = round(p[j] * round(dp[j] - delta));
          if (c.dSlope) {
            const slope = c.dSlope(raw[j], b, h, i, j);
            dSlopes[h] = round(dSlopes[h] + round(dsMod * slope));
            rowWeight += p[j] * Math.abs(slope);
          }
          const ds = c.dModify ? round(dsMod * c.dModify(raw[j], b, h, i, j)) : dsMod;
          const kj = kAt(b, kh, j);
          for (let d = 0; d < headDim; d++) {
            const at = row * headDim + d, kd = kj * headDim + d;
            dq[at] = round(dq[at] + round(round(ds * scale) * c.k[kd]));
            dk[kd] = round(dk[kd] + round(round(ds * scale) * c.q[at]));
          }
          for (let d = 0; d < valueDim; d++) {
            const vd = kj * valueDim + d;
            dv[vd] = round(dv[vd] + round(p[j] * dOut[row * valueDim + d]));
          }
        }
        dSlopesRounding[h] += (rowWeight * deltaBound) ** 2;
      }
    }
  }
  // Rows round independently: three standard deviations of their sum.
  for (let h = 0; h < heads; h++) dSlopesRounding[h] = 3 * Math.sqrt(dSlopesRounding[h]);
  return { out, dq, dk, dv, dSinks, dSlopes, dSlopesRounding };
}

/** Float64 reference backward pass. */
export function backwardOracle(c: BackwardCase, dOut: ArrayLike<number>): BackwardResult {
  return reference(c, dOut, (x) => x);
}

/**
 * The plain f32 materialized backward pass (every step rounded to f32), reading the kernel's
 * saved forward state where `twin` gives it, its `exp` per `model` (correctly rounded without).
 */
export function naiveBackwardF32(
  c: BackwardCase,
  dOut: ArrayLike<number>,
  twin: TwinOptions = {},
  model?: ExpModel,
): BackwardResult {
  return reference(c, dOut, Math.fround, { ...twin, ...(model ? { exp: wgslExp(model) } : {}) });
}

/** Gradient names with their reference arrays. */
export const GRADIENTS = ["dq", "dk", "dv", "dSinks", "dSlopes"] as const;

/**
 * DESIGN.md's tolerance per gradient: twice the plain f32 backward's error on the same inputs,
 * plus 1e-6. A kernel that reads its forward's saved `out` and `lse`, or computes `exp` in WGSL,
 * says so in `twin`: the plain backward then does too. Slope gradients add the rounding bound of
 * `D`'s reduction (`dSlopesRounding`), which no single twin's error is sure to show.
 */
export function backwardTolerance(
  c: BackwardCase,
  dOut: ArrayLike<number>,
  ref: BackwardResult,
  twin: TwinOptions = {},
): Record<(typeof GRADIENTS)[number], number> {
  const twins = (twin.wgslExp ? EXP_MODELS : [undefined]).map((m) =>
    naiveBackwardF32(c, dOut, twin, m)
  );
  const tol = (name: (typeof GRADIENTS)[number]) =>
    2 * Math.max(...twins.map((t) => maxAbsError(t[name], ref[name]))) + 1e-6 +
    (name === "dSlopes" ? Math.max(0, ...ref.dSlopesRounding) : 0);
  return Object.fromEntries(GRADIENTS.map((n) => [n, tol(n)])) as Record<
    (typeof GRADIENTS)[number],
    number
  >;
}
