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
import { isCausal, stateSharers } from "../../core/_linear_lower.ts";
import type { KernelPlan } from "../../core/lower.ts";
import type { Tensor } from "../backend.ts";
import type { KernelContext } from "./_kernel_context.ts";
import { gatherHead } from "./_storage.ts";

/** Writes φ of `rows` rows of `dim` elements (`x`) into `out` (`rows × F`). */
export type Features = (x: Float32Array, rows: number, out: Float64Array) => void;

function elementwise(f: (x: number) => number): Features {
  return (x, _rows, out) => {
    for (let i = 0; i < x.length; i++) out[i] = f(x[i]);
  };
}

/** The plan's feature map as a function over row blocks. */
export function linearFeatures(plan: KernelPlan): Features {
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

/** Per-run buffers and sizes of one query head's work. */
interface Head {
  readonly features: number;
  readonly valueDim: number;
  /**
   * `F × (Dv + 1)`: `S` with `z` in the last column, over this call's keys so far, from zero:
   * shared by the query heads of a KV head whose decays are equal.
   */
  readonly state: Float64Array;
  /** The input state of this query head (the keys of earlier calls), if any. */
  readonly carried?: Float64Array;
  readonly phiQ: Float64Array;
  readonly phiK: Float64Array;
  readonly values: Float32Array;
  readonly row: Float64Array;
  readonly normalize: boolean;
  readonly epsilon: number;
  readonly out: KernelContext["out"];
}

/** Adds `g · φ(q_i)ᵀ m` to row `i`'s sums. */
function addState(h: Head, m: Float64Array, i: number, g: number): void {
  const { features, valueDim, phiQ, row } = h;
  const width = valueDim + 1;
  if (g === 0) return;
  for (let f = 0; f < features; f++) {
    const a = phiQ[i * features + f] * g;
    const base = f * width;
    for (let d = 0; d < width; d++) row[d] += a * m[base + d];
  }
}

/**
 * Starts query row `i`'s sums from the state before its chunk: this call's keys decayed by `g`,
 * the input state by `gIn` (it has been decayed by every key since).
 */
function readState(h: Head, i: number, g: number, gIn: number): void {
  h.row.fill(0);
  addState(h, h.state, i, g);
  if (h.carried) addState(h, h.carried, i, gIn);
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

/** Folds keys `from..to-1` into `state`, key `j` weighted `γ^(to−1−j)`, after decaying it by `γ^(to−from)`. */
function fold(
  state: Float64Array,
  phiK: Float64Array,
  values: Float32Array,
  shape: { features: number; valueDim: number },
  range: [number, number],
  powers: Float64Array,
): void {
  const { features, valueDim } = shape;
  const [from, to] = range;
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
 * this call's keys, `[B, Hq, F, Dv + 1]`. The key-side work (features, folding keys into the
 * state) runs once per set of query heads that share it (GQA: once per KV head).
 */
export function runLinear(ctx: KernelContext, state?: Tensor): Float32Array {
  const { plan } = ctx;
  const n = plan.normalizer as LinearNormalizer;
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  const features = featureCount(n.featureMap, headDim);
  const width = valueDim + 1;
  const shape = { features, valueDim };
  const phi = linearFeatures(plan);
  const causal = isCausal(plan.mask);
  const chunk = plan.tile.kv;
  const next = new Float32Array(batch * heads * features * width);
  const phiK = new Float64Array(kvLen * features);
  const group = heads / kvHeads;
  const powers = new Float64Array(chunk + 1);
  const sharers = Math.max(1, stateSharers(n, heads, kvHeads));
  const sets = Array.from(
    { length: heads / sharers },
    (_, s) => Array.from({ length: sharers }, (_, m) => s * sharers + m),
  );
  let phiKOf = -1;
  for (let b = 0; b < batch; b++) {
    for (const set of sets) {
      const kv = ctx.keysValues(b, set[0]);
      const kvHead = b * kvHeads + Math.floor(set[0] / group);
      if (phiKOf !== kvHead) phi(kv.keys, kvLen, phiK), phiKOf = kvHead;
      const shared = new Float64Array(features * width);
      const members: Head[] = set.map((hq) => {
        const phiQ = new Float64Array(qLen * features);
        phi(ctx.queries(b, hq), qLen, phiQ);
        return {
          features,
          valueDim,
          state: shared,
          ...(state ? { carried: Float64Array.from(gatherHead(state, b, hq)) } : {}),
          phiQ,
          phiK,
          values: kv.values,
          row: new Float64Array(width),
          normalize: n.normalize,
          epsilon: n.epsilon,
          out: ctx.out,
        };
      });
      const gamma = n.decay?.[set[0]] ?? 1;
      for (let t = 0; t <= chunk; t++) powers[t] = gamma ** t;
      const outAt = (hq: number, i: number) => ((b * heads + hq) * qLen + i) * valueDim;
      if (!causal) {
        for (let c = 0; c < kvLen; c += chunk) {
          fold(shared, phiK, kv.values, shape, [c, Math.min(c + chunk, kvLen)], powers);
        }
        members.forEach((h, m) => {
          if (kvLen === 0 && !state) return;
          for (let i = 0; i < qLen; i++) readState(h, i, 1, 1), finish(h, outAt(set[m], i));
        });
      } else {
        const offset = kvLen - qLen;
        for (let c = 0; c < kvLen; c += chunk) {
          const end = Math.min(c + chunk, kvLen);
          members.forEach((h, m) => {
            for (let i = Math.max(0, c - offset); i < Math.min(qLen, end - offset); i++) {
              const p = offset + i;
              readState(h, i, powers[p - c + 1], gamma ** (p + 1));
              for (let j = c; j <= p; j++) addKey(h, i, j, powers[p - j]);
              finish(h, outAt(set[m], i));
            }
          });
          fold(shared, phiK, kv.values, shape, [c, end], powers);
        }
      }
      // The new state: this call's keys, plus the input state decayed by all of them.
      const decayed = gamma ** kvLen;
      members.forEach((h, m) => {
        const at = (b * heads + set[m]) * features * width;
        for (let e = 0; e < shared.length; e++) {
          next[at + e] = shared[e] + (h.carried ? decayed * h.carried[e] : 0);
        }
      });
    }
  }
  return next;
}
