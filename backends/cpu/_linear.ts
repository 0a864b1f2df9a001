/**
 * CPU linear attention (see `linear()`): per query head, the features of its rows, then either
 * two passes (non-causal: fold every key into the state `S | z`, then read each query out of it)
 * or chunks of `C` keys (causal: each query reads the state of the keys before its chunk, decayed
 * to its position, plus the earlier keys of its own chunk scored directly; then the chunk is
 * folded in). `C = 1` is the recurrent form. Everything is accumulated in float64; the state
 * returned is f32. Memory: one head's features, state and a row; no Nq×Nk buffer.
 * @module
 */
import { compileExpr } from "../../core/evaluate.ts";
import { featureCount, featureExpr, type LinearNormalizer } from "../../core/linear.ts";
import { performerMatrix } from "../../core/performer_matrix.ts";
import { isCausal } from "../../core/_linear_lower.ts";
import type { KernelPlan } from "../../core/lower.ts";
import type { Tensor } from "../backend.ts";
import type { KernelContext } from "./_kernel_context.ts";
import { gatherHead } from "./_storage.ts";

/** Writes φ of `rows` rows of `dim` elements (`x`) into `out` (`rows × F`). */
type Features = (x: Float32Array, rows: number, out: Float64Array) => void;

function elementwise(f: (x: number) => number): Features {
  return (x, _rows, out) => {
    for (let i = 0; i < x.length; i++) out[i] = f(x[i]);
  };
}

/** The plan's feature map as a function over row blocks. */
function featuresOf(plan: KernelPlan): Features {
  const map = (plan.normalizer as LinearNormalizer).featureMap;
  const dim = plan.sizes.headDim;
  switch (map.kind) {
    case "elu":
      return elementwise((x) => x > 0 ? x + 1 : Math.exp(x));
    case "relu":
      return elementwise((x) => x > 0 ? x : (x === x ? 0 : x));
    case "identity":
      return elementwise((x) => x);
    case "expr": {
      const f = compileExpr(featureExpr(map)!);
      const env = { score: 0 };
      return elementwise((x) => (env.score = x, f(env)));
    }
    case "performer": {
      const m = map.features;
      const w = performerMatrix(map.seed, m, dim, map.orthogonal);
      const root = Math.sqrt(plan.scale);
      const norm = 1 / Math.sqrt(m);
      const scaled = new Float64Array(dim);
      return (x, rows, out) => {
        for (let i = 0; i < rows; i++) {
          let half = 0;
          for (let d = 0; d < dim; d++) {
            scaled[d] = x[i * dim + d] * root;
            half += scaled[d] * scaled[d];
          }
          half /= 2;
          for (let f = 0; f < m; f++) {
            let dot = 0;
            for (let d = 0; d < dim; d++) dot += w[f * dim + d] * scaled[d];
            out[i * m + f] = Math.exp(dot - half) * norm;
          }
        }
      };
    }
  }
}

/** Per-run buffers and sizes of one head's work. */
interface Head {
  readonly features: number;
  readonly valueDim: number;
  /** `F × (Dv + 1)`: `S` with `z` in the last column. */
  readonly state: Float64Array;
  readonly phiQ: Float64Array;
  readonly phiK: Float64Array;
  readonly values: Float32Array;
  readonly row: Float64Array;
  readonly normalize: boolean;
  readonly epsilon: number;
  readonly out: KernelContext["out"];
}

/** Starts query row `i`'s sums with the state scaled by `g`: `row = g · φ(q_i)ᵀ [S | z]`. */
function readState(h: Head, i: number, g: number): void {
  const { features, valueDim, state, phiQ, row } = h;
  const width = valueDim + 1;
  row.fill(0);
  if (g === 0) return;
  for (let f = 0; f < features; f++) {
    const a = phiQ[i * features + f] * g;
    const base = f * width;
    for (let d = 0; d < width; d++) row[d] += a * state[base + d];
  }
}

/** Adds key `j` with weight `w · φ(q_i)·φ(k_j)` to row `i`'s sums. */
function addKey(h: Head, i: number, j: number, w: number): void {
  const { features, valueDim, phiQ, phiK, values, row } = h;
  let dot = 0;
  for (let f = 0; f < features; f++) dot += phiQ[i * features + f] * phiK[j * features + f];
  const a = dot * w;
  for (let d = 0; d < valueDim; d++) row[d] += a * values[j * valueDim + d];
  row[valueDim] += a;
}

/** Writes row `i`'s output at `at`. */
function finish(h: Head, at: number): void {
  const { valueDim, row } = h;
  const scale = h.normalize ? 1 / (row[valueDim] + h.epsilon) : 1;
  for (let d = 0; d < valueDim; d++) h.out[at + d] = row[d] * scale;
}

/** Folds keys `from..to-1` into the state, key `j` weighted `γ^(to−1−j)`, after decaying it by `γ^(to−from)`. */
function fold(h: Head, from: number, to: number, powers: Float64Array): void {
  const { features, valueDim, state, phiK, values } = h;
  const width = valueDim + 1;
  const g = powers[to - from];
  if (g !== 1) { for (let e = 0; e < state.length; e++) state[e] *= g; }
  for (let j = from; j < to; j++) {
    const w = powers[to - 1 - j];
    for (let f = 0; f < features; f++) {
      const a = phiK[j * features + f] * w;
      const base = f * width;
      for (let d = 0; d < valueDim; d++) state[base + d] += a * values[j * valueDim + d];
      state[base + valueDim] += a;
    }
  }
}

/**
 * Runs linear attention into `ctx.out`, going on from `state` when given; returns the state after
 * this call's keys, `[B, Hq, F, Dv + 1]`.
 */
export function runLinear(ctx: KernelContext, state?: Tensor): Float32Array {
  const { plan } = ctx;
  const n = plan.normalizer as LinearNormalizer;
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  const features = featureCount(n.featureMap, headDim);
  const width = valueDim + 1;
  const phi = featuresOf(plan);
  const causal = isCausal(plan.mask);
  const chunk = plan.tile.kv;
  const next = new Float32Array(batch * heads * features * width);
  const phiK = new Float64Array(kvLen * features);
  const group = heads / kvHeads;
  const powers = new Float64Array(chunk + 1);
  let phiKOf = -1;
  for (let b = 0; b < batch; b++) {
    for (let hq = 0; hq < heads; hq++) {
      const kv = ctx.keysValues(b, hq);
      const kvHead = b * kvHeads + Math.floor(hq / group);
      if (phiKOf !== kvHead) phi(kv.keys, kvLen, phiK), phiKOf = kvHead;
      const phiQ = new Float64Array(qLen * features);
      phi(ctx.queries(b, hq), qLen, phiQ);
      const h: Head = {
        features,
        valueDim,
        state: new Float64Array(features * width),
        phiQ,
        phiK,
        values: kv.values,
        row: new Float64Array(width),
        normalize: n.normalize,
        epsilon: n.epsilon,
        out: ctx.out,
      };
      if (state) h.state.set(gatherHead(state, b, hq));
      const gamma = n.decay?.[hq] ?? 1;
      for (let t = 0; t <= chunk; t++) powers[t] = gamma ** t;
      const outAt = (i: number) => ((b * heads + hq) * qLen + i) * valueDim;
      if (!causal) {
        for (let c = 0; c < kvLen; c += chunk) fold(h, c, Math.min(c + chunk, kvLen), powers);
        if (kvLen > 0 || state) {
          for (let i = 0; i < qLen; i++) readState(h, i, 1), finish(h, outAt(i));
        }
      } else {
        const offset = kvLen - qLen;
        for (let c = 0; c < kvLen; c += chunk) {
          const end = Math.min(c + chunk, kvLen);
          for (let i = Math.max(0, c - offset); i < Math.min(qLen, end - offset); i++) {
            const p = offset + i;
            readState(h, i, powers[p - c + 1]);
            for (let j = c; j <= p; j++) addKey(h, i, j, powers[p - j]);
            finish(h, outAt(i));
          }
          fold(h, c, end, powers);
        }
      }
      next.set(h.state, (b * heads + hq) * features * width);
    }
  }
  return next;
}
