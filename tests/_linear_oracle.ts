/**
 * The float64 reference of linear attention, written independently of the kernels: the quadratic
 * form `((φ(Q)φ(K)ᵀ) ⊙ M) V`, with `M[i][j] = γ^(p−j)` for the keys row `i` sees (0 elsewhere),
 * normalized by the same weights' row sums plus ε. Feature maps are plain JS functions of a row
 * (the test cases build each map's Expr or options together with its function).
 * @module
 */
import { add, exp, type Expr, mul, score, tanh } from "../core/mod.ts";
import { performerMatrix } from "../core/mod.ts";
import type { SpecSizes } from "../core/spec.ts";

/** φ of one row of `D` values, as `F` values. */
export type RowMap = (x: Float64Array) => Float64Array;

/** A reference problem: row-major data and plain-JS semantics. */
export interface LinearCase extends SpecSizes {
  readonly q: ArrayLike<number>;
  readonly k: ArrayLike<number>;
  readonly v: ArrayLike<number>;
  readonly phi: RowMap;
  readonly causal: boolean;
  /** γ per query head (causal only). */
  readonly decay?: readonly number[];
  readonly normalize: boolean;
  readonly epsilon: number;
}

function rowOf(x: ArrayLike<number>, at: number, length: number): Float64Array {
  return Float64Array.from({ length }, (_, d) => x[at + d]);
}

/** The reference output `[B, Hq, Nq, Dv]`. */
export function linearOracle(c: LinearCase): Float64Array {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = c;
  const out = new Float64Array(batch * heads * qLen * valueDim);
  const group = heads / kvHeads;
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kh = Math.floor(h / group);
      const gamma = c.decay?.[h] ?? 1;
      const phiK = Array.from(
        { length: kvLen },
        (_, j) => c.phi(rowOf(c.k, ((b * kvHeads + kh) * kvLen + j) * headDim, headDim)),
      );
      for (let i = 0; i < qLen; i++) {
        const p = kvLen - qLen + i;
        if (c.causal && p < 0) continue;
        const phiQ = c.phi(rowOf(c.q, ((b * heads + h) * qLen + i) * headDim, headDim));
        const num = new Float64Array(valueDim);
        let den = 0;
        for (let j = 0; j < kvLen; j++) {
          if (c.causal && j > p) continue;
          let s = 0;
          for (let f = 0; f < phiQ.length; f++) s += phiQ[f] * phiK[j][f];
          const w = s * (c.causal ? gamma ** (p - j) : 1);
          den += w;
          const vAt = ((b * kvHeads + kh) * kvLen + j) * valueDim;
          for (let d = 0; d < valueDim; d++) num[d] += w * c.v[vAt + d];
        }
        const at = ((b * heads + h) * qLen + i) * valueDim;
        for (let d = 0; d < valueDim; d++) {
          out[at + d] = c.normalize ? num[d] / (den + c.epsilon) : num[d];
        }
      }
    }
  }
  return out;
}

/** The reference state after every key, `[B, Hq, F, Dv + 1]`: key `j` weighted `γ^(Nk−1−j)`. */
export function linearOracleState(c: LinearCase, features: number): Float64Array {
  const { batch, heads, kvHeads, kvLen, headDim, valueDim } = c;
  const width = valueDim + 1;
  const state = new Float64Array(batch * heads * features * width);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kh = Math.floor(h / (heads / kvHeads));
      const gamma = c.decay?.[h] ?? 1;
      for (let j = 0; j < kvLen; j++) {
        const phi = c.phi(rowOf(c.k, ((b * kvHeads + kh) * kvLen + j) * headDim, headDim));
        const w = gamma ** (kvLen - 1 - j);
        const vAt = ((b * kvHeads + kh) * kvLen + j) * valueDim;
        for (let f = 0; f < features; f++) {
          const at = ((b * heads + h) * features + f) * width;
          for (let d = 0; d < valueDim; d++) state[at + d] += w * phi[f] * c.v[vAt + d];
          state[at + valueDim] += w * phi[f];
        }
      }
    }
  }
  return state;
}

/** An elementwise map from a function of one value. */
const each = (f: (x: number) => number): RowMap => (x) => x.map(f);

/** A function of one number (a rounding, an `exp`). */
type Round = (x: number) => number;

/** The pullback of a row map at `x`: `∂loss/∂x` given `∂loss/∂φ(x)` (`g`, `F` values). */
export type RowPullback = (x: Float64Array, g: Float64Array) => Float64Array;

/** The pullback of an elementwise map, from its derivative. */
const eachBack = (df: (x: number) => number): RowPullback => (x, g) =>
  x.map((a, d) => df(a) * g[d]);

/** A feature map as `linear()` takes it, with its JS function and whether it is positive. */
export interface MapCase {
  readonly name: string;
  readonly map: "elu" | "relu" | "identity" | Expr | {
    kind: "performer";
    features: number;
    seed: number;
    orthogonal: boolean;
  };
  /**
   * The row map, given the head dim and scale; `round` (f32 rounding at every step) and `exp` (as
   * a WGSL kernel's may err, see `wgslExp`) for the plain f32 twin. Elementwise maps ignore them.
   */
  readonly phi: (headDim: number, scale: number, round?: Round, exp?: Round) => RowMap;
  /** The pullback of the row map, given the same (written by hand). */
  readonly pullback: (headDim: number, scale: number, round?: Round, exp?: Round) => RowPullback;
  /** Whether φ > 0: normalized attention is well conditioned. */
  readonly positive: boolean;
}

/** Elementwise maps, built-in and custom. */
export const ELEMENTWISE_MAPS: readonly MapCase[] = [
  {
    name: "elu",
    map: "elu",
    phi: () => each((x) => x > 0 ? x + 1 : Math.exp(x)),
    pullback: () => eachBack((x) => x > 0 ? 1 : Math.exp(x)),
    positive: true,
  },
  {
    name: "relu",
    map: "relu",
    phi: () => each((x) => Math.max(x, 0)),
    pullback: () => eachBack((x) => x > 0 ? 1 : 0),
    positive: false,
  },
  {
    name: "identity",
    map: "identity",
    phi: () => each((x) => x),
    pullback: () => eachBack(() => 1),
    positive: false,
  },
  {
    name: "exp(score/2)",
    map: exp(mul(score, 0.5)),
    phi: () => each((x) => Math.exp(x / 2)),
    pullback: () => eachBack((x) => Math.exp(x / 2) / 2),
    positive: true,
  },
  {
    name: "score²+1",
    map: add(mul(score, score), 1),
    phi: () => each((x) => x * x + 1),
    pullback: () => eachBack((x) => 2 * x),
    positive: true,
  },
  {
    name: "tanh(score)+1.5",
    map: add(tanh(score), 1.5),
    phi: () => each((x) => Math.tanh(x) + 1.5),
    pullback: () => eachBack((x) => 1 - Math.tanh(x) ** 2),
    positive: true,
  },
];

/**
 * Performer features: the matrix is core's (data shared by every backend), the formula written
 * here: `φ(x) = exp(W·x√s − |x√s|²/2) / √m`.
 */
export function performerCase(features: number, seed: number, orthogonal: boolean): MapCase {
  return {
    name: `performer(${features}, ${seed}${orthogonal ? ", orthogonal" : ""})`,
    map: { kind: "performer", features, seed, orthogonal },
    phi: (headDim, scale, round = (x) => x, exp = Math.exp) => {
      const w = performerMatrix(seed, features, headDim, orthogonal);
      const root = round(Math.sqrt(scale)), norm = round(1 / Math.sqrt(features));
      return (x) => {
        const y = x.map((a) => round(a * root));
        const half = round(y.reduce((s, a) => round(s + round(a * a)), 0) / 2);
        return Float64Array.from({ length: features }, (_, f) => {
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot = round(dot + round(w[f * headDim + d] * y[d]));
          return round(round(exp(round(dot - half))) * norm);
        });
      };
    },
    // ∂φ_f/∂x = √s·φ_f·(W_f − x√s), so ∂loss/∂x = √s·Σ_f g_f·φ_f·(W_f − x√s).
    pullback: (headDim, scale, round = (x) => x, exp = Math.exp) => {
      const w = performerMatrix(seed, features, headDim, orthogonal);
      const phi = performerCase(features, seed, orthogonal).phi(headDim, scale, round, exp);
      const root = round(Math.sqrt(scale));
      return (x, g) => {
        const y = phi(x);
        const dx = new Float64Array(headDim);
        for (let f = 0; f < features; f++) {
          const a = round(g[f] * y[f]);
          for (let d = 0; d < headDim; d++) {
            dx[d] = round(dx[d] + round(a * round(w[f * headDim + d] - round(x[d] * root))));
          }
        }
        return dx.map((a) => round(a * root));
      };
    },
    positive: true,
  };
}
