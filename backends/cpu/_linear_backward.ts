/**
 * CPU backward pass of linear attention (see `linear()`), by its recurrences rather than the
 * quadratic form. With `A_ij = γ^(p−j)·φ(q_i)·φ(k_j)` and row `i`'s adjoint
 * `a_i = [dO_i / den_i; −dO_i·out_i / den_i]` (`[dO_i; 0]` unnormalized):
 * - forward over the chunks, the key-side state `S | z` gives each query its output (recomputed
 *   in f64) and `dφ(q_i) = (S_i | z_i)·a_i`, its own chunk's earlier keys scored directly;
 * - in reverse, the query-side state `R = Σ_i γ^(p_i−j) φ(q_i) a_iᵀ` over the queries at or after
 *   key `j` gives `dφ(k_j) = R_j·[v_j; 1]` and `dv_j = R_jᵀ φ(k_j)` (its first `Dv` columns);
 * - the feature map's pullback turns `dφ` into dq and dk (GQA: a KV head's `dφ(k)` summed over its
 *   query heads in order, then pulled back once; the pullback is linear in `dφ`);
 * - `∂loss/∂γ = (Σ_i p_i·φ(q_i)·dφ(q_i) − Σ_j j·φ(k_j)·dφ(k_j)) / γ`: both sums equal
 *   `Σ_ij dA_ij·A_ij` weighted by position, their difference weights it by `p_i − j`.
 * Everything in float64, in a fixed order; memory one head's features, adjoints and two states:
 * O(N·F), never `Nq × Nk`.
 * @module
 */
import { compileExpr } from "../../core/evaluate.ts";
import { featureCount, type LinearNormalizer } from "../../core/linear.ts";
import { featureMapGradient } from "../../core/score_mod_gradient.ts";
import { performerMatrix } from "../../core/performer_matrix.ts";
import { isCausal } from "../../core/_linear_lower.ts";
import type { KernelPlan } from "../../core/lower.ts";
import type { BackwardInputs } from "../backend.ts";
import { gatherHead, hostArray } from "./_storage.ts";
import { linearFeatures } from "./_linear.ts";
import type { BackwardResult } from "./_backward.ts";

/** Adds `∂loss/∂x` of `rows` rows (`x`, `D` each) given `∂loss/∂φ(x)` (`g`, `F` each) to `dx`. */
type Pullback = (x: Float32Array, g: Float64Array, rows: number, dx: Float64Array) => void;

/** The plan's feature map's pullback. */
function pullbackOf(plan: KernelPlan): Pullback {
  const map = (plan.normalizer as LinearNormalizer).featureMap;
  const dim = plan.sizes.headDim;
  if (map.kind !== "performer") {
    const slope = compileExpr(featureMapGradient(map, "cpu")!);
    const env = { score: 0 };
    return (x, g, _rows, dx) => {
      for (let e = 0; e < x.length; e++) env.score = x[e], dx[e] += slope(env) * g[e];
    };
  }
  // φ_f = exp(W_f·x' − |x'|²/2)/√m with x' = x·√s: ∂φ_f/∂x = √s·φ_f·(W_f − x').
  const m = map.features;
  const w = performerMatrix(map.seed, m, dim, map.orthogonal);
  const root = Math.sqrt(plan.scale);
  const phi = new Float64Array(m);
  const features = linearFeatures(plan);
  return (x, g, rows, dx) => {
    for (let i = 0; i < rows; i++) {
      const row = x.subarray(i * dim, (i + 1) * dim);
      features(row, 1, phi);
      let total = 0;
      for (let f = 0; f < m; f++) {
        const a = g[i * m + f] * phi[f];
        total += a;
        for (let d = 0; d < dim; d++) dx[i * dim + d] += root * a * w[f * dim + d];
      }
      for (let d = 0; d < dim; d++) dx[i * dim + d] -= root * total * row[d] * root;
    }
  };
}

/** One query head's data, features and adjoints. */
interface HeadData {
  readonly phiQ: Float64Array;
  readonly phiK: Float64Array;
  readonly values: Float32Array;
  readonly dO: Float32Array;
  /** `Nq × W` adjoints `a_i` (zero for rows that see no key). */
  readonly adj: Float64Array;
  readonly dPhiQ: Float64Array;
  /** This head's `dφ(k)`, `Nk × F`. */
  readonly dPhiK: Float64Array;
  /** This head's share of dv, `Nk × Dv`. */
  readonly dv: Float64Array;
}

/** Sizes and options read by every step. */
interface Shape {
  readonly qLen: number;
  readonly kvLen: number;
  readonly features: number;
  readonly valueDim: number;
  readonly chunk: number;
  readonly causal: boolean;
  readonly normalize: boolean;
  readonly epsilon: number;
  /** `γ^t` for `t` in `0..chunk`. */
  readonly powers: Float64Array;
}

const dotAt = (a: Float64Array, i: number, b: Float64Array, j: number, n: number) => {
  let s = 0;
  for (let f = 0; f < n; f++) s += a[i * n + f] * b[j * n + f];
  return s;
};

/** `[v_j; 1]·x` for a `W`-long `x` at `at`. */
function valueDot(values: Float32Array, j: number, x: Float64Array, at: number, dv: number) {
  let s = x[at + dv];
  for (let d = 0; d < dv; d++) s += values[j * dv + d] * x[at + d];
  return s;
}

/**
 * Forward over the chunks: row `i`'s output and adjoint, then `dφ(q_i)`. `state` holds the keys
 * before the current chunk, decayed to its start (non-causal: every key).
 */
function forwardPass(s: Shape, hd: HeadData): void {
  const { qLen, kvLen, features: F, valueDim: Dv, chunk, powers } = s;
  const W = Dv + 1, offset = kvLen - qLen;
  const state = new Float64Array(F * W), row = new Float64Array(W);
  const readRow = (i: number, g: number, from: number, to: number) => {
    row.fill(0);
    for (let f = 0; f < F; f++) {
      const a = hd.phiQ[i * F + f] * g;
      for (let w = 0; w < W; w++) row[w] += a * state[f * W + w];
    }
    for (let j = from; j <= to; j++) {
      const a = dotAt(hd.phiQ, i, hd.phiK, j, F) * powers[to - j];
      for (let d = 0; d < Dv; d++) row[d] += a * hd.values[j * Dv + d];
      row[Dv] += a;
    }
    const den = s.normalize ? row[Dv] + s.epsilon : 1;
    let dOutO = 0;
    for (let d = 0; d < Dv; d++) dOutO += hd.dO[i * Dv + d] * row[d] / den;
    for (let d = 0; d < Dv; d++) hd.adj[i * W + d] = hd.dO[i * Dv + d] / den;
    hd.adj[i * W + Dv] = s.normalize ? -dOutO / den : 0;
    for (let f = 0; f < F; f++) {
      let x = 0;
      for (let w = 0; w < W; w++) x += state[f * W + w] * hd.adj[i * W + w];
      hd.dPhiQ[i * F + f] = x * g;
    }
    for (let j = from; j <= to; j++) {
      const a = valueDot(hd.values, j, hd.adj, i * W, Dv) * powers[to - j];
      for (let f = 0; f < F; f++) hd.dPhiQ[i * F + f] += a * hd.phiK[j * F + f];
    }
  };
  const fold = (from: number, to: number) => {
    const g = powers[to - from];
    for (let e = 0; e < state.length; e++) state[e] *= g;
    for (let j = from; j < to; j++) {
      for (let f = 0; f < F; f++) {
        const a = hd.phiK[j * F + f] * powers[to - 1 - j];
        for (let d = 0; d < Dv; d++) state[f * W + d] += a * hd.values[j * Dv + d];
        state[f * W + Dv] += a;
      }
    }
  };
  if (!s.causal) {
    if (kvLen === 0) return;
    for (let c = 0; c < kvLen; c += chunk) fold(c, Math.min(c + chunk, kvLen));
    for (let i = 0; i < qLen; i++) readRow(i, 1, 0, -1);
    return;
  }
  for (let c = 0; c < kvLen; c += chunk) {
    const end = Math.min(c + chunk, kvLen);
    for (let i = Math.max(0, c - offset); i < Math.min(qLen, end - offset); i++) {
      readRow(i, powers[offset + i - c + 1], c, offset + i);
    }
    fold(c, end);
  }
}

/**
 * In reverse over the chunks: `dφ(k_j)` and dv from the query-side state `R` of the queries at or
 * after each key (non-causal: every query).
 */
function reversePass(s: Shape, hd: HeadData): void {
  const { qLen, kvLen, features: F, valueDim: Dv, chunk, powers } = s;
  const W = Dv + 1, offset = kvLen - qLen;
  const after = new Float64Array(F * W);
  const readKey = (j: number, g: number, from: number, to: number) => {
    // Chunk-after state, decayed to key j, then this chunk's queries at or after j.
    for (let f = 0; f < F; f++) {
      hd.dPhiK[j * F + f] = g * valueDot(hd.values, j, after, f * W, Dv);
    }
    for (let d = 0; d < Dv; d++) {
      let x = 0;
      for (let f = 0; f < F; f++) x += hd.phiK[j * F + f] * after[f * W + d];
      hd.dv[j * Dv + d] = g * x;
    }
    for (let i = from; i < to; i++) {
      const gap = powers[offset + i - j];
      const a = valueDot(hd.values, j, hd.adj, i * W, Dv) * gap;
      for (let f = 0; f < F; f++) hd.dPhiK[j * F + f] += a * hd.phiQ[i * F + f];
      const score = dotAt(hd.phiQ, i, hd.phiK, j, F) * gap;
      for (let d = 0; d < Dv; d++) hd.dv[j * Dv + d] += score * hd.adj[i * W + d];
    }
  };
  const fold = (from: number, to: number, start: number, g: number) => {
    for (let e = 0; e < after.length; e++) after[e] *= g;
    for (let i = from; i < to; i++) {
      const gap = s.causal ? powers[offset + i - start] : 1;
      for (let f = 0; f < F; f++) {
        const a = hd.phiQ[i * F + f] * gap;
        for (let w = 0; w < W; w++) after[f * W + w] += a * hd.adj[i * W + w];
      }
    }
  };
  if (!s.causal) {
    fold(0, qLen, 0, 1);
    for (let j = 0; j < kvLen; j++) readKey(j, 1, 0, 0);
    return;
  }
  const last = Math.floor(Math.max(0, kvLen - 1) / chunk) * chunk;
  for (let c = last; c >= 0 && kvLen > 0; c -= chunk) {
    const end = Math.min(c + chunk, kvLen);
    const from = Math.max(0, c - offset), to = Math.max(0, Math.min(qLen, end - offset));
    for (let j = c; j < end; j++) {
      // Queries of this chunk at or after key j: positions j..end-1.
      readKey(j, powers[end - j], Math.max(from, j - offset), to);
    }
    fold(from, to, c, powers[end - c]);
  }
}

/** Runs the backward pass of a linear plan (inputs already checked). */
export function runLinearBackward(plan: KernelPlan, io: BackwardInputs): BackwardResult {
  const n = plan.normalizer as LinearNormalizer;
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  const F = featureCount(n.featureMap, headDim), W = valueDim + 1;
  const group = heads / kvHeads;
  const phi = linearFeatures(plan), pullback = pullbackOf(plan);
  const chunk = plan.tile.kv;
  const dq = hostArray(plan.dtype, batch * heads * qLen * headDim);
  const dk = hostArray(plan.dtype, batch * kvHeads * kvLen * headDim);
  const dv = hostArray(plan.dtype, batch * kvHeads * kvLen * valueDim);
  const dDecay = n.decay && new Array<number>(heads).fill(0);
  const dQ = new Float64Array(qLen * headDim), dK = new Float64Array(kvLen * headDim);
  const dPhiKSum = new Float64Array(kvLen * F), dvSum = new Float64Array(kvLen * valueDim);
  for (let b = 0; b < batch; b++) {
    for (let kh = 0; kh < kvHeads; kh++) {
      const keys = gatherHead(io.k, b, kh), values = gatherHead(io.v, b, kh);
      const phiK = new Float64Array(kvLen * F);
      phi(keys, kvLen, phiK);
      dPhiKSum.fill(0), dvSum.fill(0);
      for (let h = kh * group; h < (kh + 1) * group; h++) {
        const gamma = n.decay?.[h] ?? 1;
        const powers = Float64Array.from({ length: chunk + 1 }, (_, t) => gamma ** t);
        const q = gatherHead(io.q, b, h);
        const phiQ = new Float64Array(qLen * F);
        phi(q, qLen, phiQ);
        const hd: HeadData = {
          phiQ,
          phiK,
          values,
          dO: gatherHead(io.dOut, b, h),
          adj: new Float64Array(qLen * W),
          dPhiQ: new Float64Array(qLen * F),
          dPhiK: new Float64Array(kvLen * F),
          dv: new Float64Array(kvLen * valueDim),
        };
        const shape: Shape = {
          qLen,
          kvLen,
          features: F,
          valueDim,
          chunk,
          causal: isCausal(plan.mask),
          normalize: n.normalize,
          epsilon: n.epsilon,
          powers,
        };
        forwardPass(shape, hd);
        reversePass(shape, hd);
        if (dDecay) {
          let sum = 0;
          for (let i = 0; i < qLen; i++) sum += (kvLen - qLen + i) * dotAt(phiQ, i, hd.dPhiQ, i, F);
          for (let j = 0; j < kvLen; j++) sum -= j * dotAt(phiK, j, hd.dPhiK, j, F);
          dDecay[h] += sum / gamma;
        }
        for (let e = 0; e < dPhiKSum.length; e++) dPhiKSum[e] += hd.dPhiK[e];
        for (let e = 0; e < dvSum.length; e++) dvSum[e] += hd.dv[e];
        dQ.fill(0);
        pullback(q, hd.dPhiQ, qLen, dQ);
        dq.set(dQ, (b * heads + h) * qLen * headDim);
      }
      dK.fill(0);
      pullback(keys, dPhiKSum, kvLen, dK);
      dk.set(dK, (b * kvHeads + kh) * kvLen * headDim);
      dv.set(dvSum, (b * kvHeads + kh) * kvLen * valueDim);
    }
  }
  return { dq, dk, dv, ...(dDecay ? { dDecay } : {}) };
}
