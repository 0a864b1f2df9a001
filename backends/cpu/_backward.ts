/**
 * CPU backward kernel (FlashAttention-2's, by recomputation): per query tile and listed key tile,
 * `S = scale·q·kᵀ` (score modifier applied, hidden keys left out), `P = exp(S − lse)`,
 * `dV += Pᵀ·dO`, `dP = dO·Vᵀ`, `dS = P ∘ (dP − D)` times the modifier's derivative, `dQ += scale·dS·K`,
 * `dK += scale·dSᵀ·Q`, with `D = Σ_j P·dP` (= rowsum(dO ∘ O)). The row statistics, `lse` and
 * `D`, are recomputed in f64 in one more pass over the listed keys rather than taken from the
 * saved f32 `lse` and `out`: their rounding would enter every P and dS, and reductions over all
 * of a head's entries (an ALiBi slope's gradient, each term weighted by its distance `j − i`)
 * add it up past the plain f32 reference's error. Scratch: two tiles and per-head f64
 * accumulators, O(N·d), never `Nq × Nk`. One thread walks heads, tiles, rows and keys in a fixed
 * order (a KV head's query heads in increasing order), so two runs give identical bits. Rows that
 * saw no key (`lse = −∞`) get zero gradients.
 * @module
 */
import type { KernelPlan } from "../../core/lower.ts";
import { type CompiledExpr, compileExpr, type ExprEnv } from "../../core/evaluate.ts";
import type { ScoreModGradient } from "../../core/score_mod_gradient.ts";
import { planLayout } from "../../core/plan_layout.ts";
import { firstRow } from "../../core/tile_lists.ts";
import type { SoftmaxBackwardInputs } from "../backend.ts";
import { gatherHead, type HostArray, hostArray } from "./_storage.ts";

/** A backward pass's results, as host arrays (the backend wraps them as tensors). */
export interface BackwardResult {
  readonly dq: HostArray;
  readonly dk: HostArray;
  readonly dv: HostArray;
  readonly dSinkLogits?: number[];
  readonly dHeadParams?: number[][];
  /** A linear plan's `∂loss/∂decay`, one per query head. */
  readonly dDecay?: number[];
}

/** What the per-element loop reads besides the data: compiled Exprs and the reused bindings. */
interface Elementwise {
  readonly env: ExprEnv;
  readonly mask?: CompiledExpr;
  readonly scoreMod?: CompiledExpr;
  readonly dScore?: CompiledExpr;
  readonly dParams: CompiledExpr[];
}

/** One `(b, h)`'s rows: queries, output, its gradient, lse and `D`; and the f64 `dQ`. */
interface HeadRows {
  readonly q: Float32Array;
  readonly dO: Float32Array;
  readonly lse: Float64Array;
  readonly delta: Float64Array;
  readonly dQ: Float64Array;
}

/** Runs the backward pass of a flash or materialized softmax plan (inputs already checked). */
export function runBackward(
  plan: KernelPlan,
  io: SoftmaxBackwardInputs,
  gradient?: ScoreModGradient,
): BackwardResult {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  const group = heads / kvHeads;
  const fn: Elementwise = {
    env: { b: 0, h: 0, qIdx: 0, kvIdx: 0, qLen, kvLen, score: 0 },
    mask: plan.mask && compileExpr(plan.mask),
    scoreMod: plan.scoreMod && compileExpr(plan.scoreMod),
    dScore: gradient && compileExpr(gradient.dScore),
    dParams: gradient?.dParams.map(compileExpr) ?? [],
  };
  const dq = hostArray(plan.dtype, batch * heads * qLen * headDim);
  const dk = hostArray(plan.dtype, batch * kvHeads * kvLen * headDim);
  const dv = hostArray(plan.dtype, batch * kvHeads * kvLen * valueDim);
  const dK = new Float64Array(kvLen * headDim), dV = new Float64Array(kvLen * valueDim);
  const dQ = new Float64Array(qLen * headDim);
  const dSink = plan.sinkLogits && new Array<number>(heads).fill(0);
  const dParams = fn.dParams.map(() => new Array<number>(heads).fill(0));
  const tiles = backwardTiles(plan);
  for (let b = 0; b < batch; b++) {
    for (let kh = 0; kh < kvHeads; kh++) {
      const keys = gatherHead(io.k, b, kh), values = gatherHead(io.v, b, kh);
      dK.fill(0), dV.fill(0);
      for (let h = kh * group; h < (kh + 1) * group; h++) {
        fn.env.b = b, fn.env.h = h;
        const row0 = (b * heads + h) * qLen;
        const q = gatherHead(io.q, b, h), dO = gatherHead(io.dOut, b, h);
        dQ.fill(0);
        const data = { q, dO, keys, values };
        const rows = { q, dO, dQ, ...rowStatistics(plan, fn, tiles, data, b, h) };
        if (dSink) dSink[h] += sinkGradient(plan.sinkLogits![h], rows);
        const params = dParams.map((d) => d[h]);
        tiles.head(b, h, (i0, i1, j0, j1, partial) => {
          const p = tiles.p, ds = tiles.ds;
          computeTile(plan, fn, rows, keys, values, [i0, i1, j0, j1], partial, p, ds, params);
          accumulateTile(plan, rows, keys, [i0, i1, j0, j1], p, ds, dK, dV);
        });
        params.forEach((x, n) => dParams[n][h] = x);
        dq.set(dQ, row0 * headDim);
      }
      dk.set(dK, (b * kvHeads + kh) * kvLen * headDim);
      dv.set(dV, (b * kvHeads + kh) * kvLen * valueDim);
    }
  }
  return {
    dq,
    dk,
    dv,
    ...(dSink ? { dSinkLogits: dSink } : {}),
    ...(dParams.length ? { dHeadParams: dParams } : {}),
  };
}

type TileVisitor = (i0: number, i1: number, j0: number, j1: number, partial: boolean) => void;

/** The plan's block layout walked per head, and the two tile-sized scratch buffers. */
function backwardTiles(plan: KernelPlan) {
  const layout = planLayout(plan);
  const { tileQ, tileKv } = layout;
  const { heads, qLen, kvLen } = plan.sizes;
  return {
    p: new Float64Array(tileQ * tileKv),
    ds: new Float64Array(tileQ * tileKv),
    /** Visits the listed key tiles of each query tile of `(b, h)`, in layout order. */
    head(b: number, h: number, visit: TileVisitor): void {
      const base = firstRow(layout, heads, b, h);
      for (let row = 0; row < layout.rows; row++) {
        const i0 = row * tileQ, i1 = Math.min(qLen, i0 + tileQ);
        for (let e = layout.rowStart[base + row]; e < layout.rowStart[base + row + 1]; e++) {
          const j0 = layout.tileCol[e] * tileKv;
          visit(i0, i1, j0, Math.min(kvLen, j0 + tileKv), layout.partial[e] === 1);
        }
      }
    },
  };
}

/**
 * Each row's log-sum-exp over its visible keys (and the head's sink logit) and `D = Σ_j P·dP`, in
 * f64 with an online maximum; a row that saw no key gets `D = 0` and `lse = -Infinity` (or the
 * sink logit).
 */
function rowStatistics(
  plan: KernelPlan,
  fn: Elementwise,
  tiles: ReturnType<typeof backwardTiles>,
  data: { q: Float32Array; dO: Float32Array; keys: Float32Array; values: Float32Array },
  b: number,
  h: number,
): { lse: Float64Array; delta: Float64Array } {
  const { qLen, headDim, valueDim } = plan.sizes, env = fn.env, { q, dO, keys, values } = data;
  const max = new Float64Array(qLen).fill(-Infinity), sum = new Float64Array(qLen);
  const weighted = new Float64Array(qLen);
  tiles.head(b, h, (i0, i1, j0, j1, partial) => {
    for (let i = i0; i < i1; i++) {
      env.qIdx = i;
      for (let j = j0; j < j1; j++) {
        env.kvIdx = j;
        if (partial && fn.mask && fn.mask(env) === 0) continue;
        env.score = dot(q, i * headDim, keys, j * headDim, headDim) * plan.scale;
        const s = fn.scoreMod ? fn.scoreMod(env) : env.score;
        if (s === -Infinity) continue; // weight 0
        if (s > max[i] || s !== s) {
          const rescale = max[i] === -Infinity ? 0 : Math.exp(max[i] - s);
          sum[i] *= rescale, weighted[i] *= rescale, max[i] = s;
        }
        const e = Math.exp(s - max[i]);
        sum[i] += e;
        weighted[i] += e * dot(dO, i * valueDim, values, j * valueDim, valueDim);
      }
    }
  });
  const sink = plan.sinkLogits?.[h];
  const lse = new Float64Array(qLen), delta = new Float64Array(qLen);
  for (let i = 0; i < qLen; i++) {
    const m = max[i];
    if (!(sum[i] > 0)) {
      lse[i] = sum[i] === 0 ? sink ?? -Infinity : NaN;
      delta[i] = sum[i] === 0 ? 0 : NaN;
      continue;
    }
    const top = sink === undefined ? m : Math.max(m, sink);
    const total = sum[i] * Math.exp(m - top) + (sink === undefined ? 0 : Math.exp(sink - top));
    lse[i] = top + Math.log(total);
    delta[i] = (weighted[i] * Math.exp(m - top)) / total;
  }
  return { lse, delta };
}

/** `∂loss/∂sink = −Σ_i P_sink,i · D_i`: the sink takes probability from every key alike. */
function sinkGradient(sink: number, rows: HeadRows): number {
  let sum = 0;
  for (let i = 0; i < rows.lse.length; i++) {
    if (rows.lse[i] !== -Infinity) sum -= Math.exp(sink - rows.lse[i]) * rows.delta[i];
  }
  return sum;
}

/**
 * Fills the tile's `P` and `dS` (`∂loss/∂(scale·q·k)`), zero for hidden keys and rows that saw
 * no key, and adds the head parameters' gradients into `params`.
 */
function computeTile(
  plan: KernelPlan,
  fn: Elementwise,
  rows: HeadRows,
  keys: Float32Array,
  values: Float32Array,
  [i0, i1, j0, j1]: readonly number[],
  partial: boolean,
  p: Float64Array,
  ds: Float64Array,
  params: number[],
): void {
  const { headDim, valueDim } = plan.sizes;
  const width = j1 - j0, { env, q, dO } = { env: fn.env, ...rows };
  for (let i = i0; i < i1; i++) {
    const at = (i - i0) * width, lse = rows.lse[i];
    env.qIdx = i;
    for (let j = j0; j < j1; j++) {
      env.kvIdx = j;
      if (lse === -Infinity || (partial && fn.mask && fn.mask(env) === 0)) {
        p[at + j - j0] = 0, ds[at + j - j0] = 0;
        continue;
      }
      const s = dot(q, i * headDim, keys, j * headDim, headDim) * plan.scale;
      env.score = s;
      const pij = Math.exp((fn.scoreMod ? fn.scoreMod(env) : s) - lse);
      const dsMod = pij * (dot(dO, i * valueDim, values, j * valueDim, valueDim) - rows.delta[i]);
      for (let n = 0; n < params.length; n++) params[n] += dsMod * fn.dParams[n](env);
      p[at + j - j0] = pij;
      ds[at + j - j0] = fn.dScore ? dsMod * fn.dScore(env) : dsMod;
    }
  }
}

/** `dV += Pᵀ·dO`, `dK += scale·dSᵀ·Q`, `dQ += scale·dS·K` for one tile, keys in order. */
function accumulateTile(
  plan: KernelPlan,
  rows: HeadRows,
  keys: Float32Array,
  [i0, i1, j0, j1]: readonly number[],
  p: Float64Array,
  ds: Float64Array,
  dK: Float64Array,
  dV: Float64Array,
): void {
  const { headDim, valueDim } = plan.sizes;
  const { q, dO, dQ } = rows, width = j1 - j0, scale = plan.scale;
  for (let i = i0; i < i1; i++) {
    const at = (i - i0) * width, qi = i * headDim, oi = i * valueDim;
    for (let j = j0; j < j1; j++) {
      const pij = p[at + j - j0], dsij = ds[at + j - j0] * scale;
      // Hidden keys (and underflowed ones) add nothing; skipping them keeps NaN in a hidden k out.
      if (pij === 0 && dsij === 0) continue;
      const kj = j * headDim, vj = j * valueDim;
      for (let d = 0; d < valueDim; d++) dV[vj + d] += pij * dO[oi + d];
      for (let d = 0; d < headDim; d++) {
        dK[kj + d] += dsij * q[qi + d];
        dQ[qi + d] += dsij * keys[kj + d];
      }
    }
  }
}

/** `Σ_d a[ai + d] · b[bi + d]` in f64, four independent partial sums. */
function dot(a: Float32Array, ai: number, b: Float32Array, bi: number, n: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, d = 0;
  for (; d + 3 < n; d += 4) {
    s0 += a[ai + d] * b[bi + d];
    s1 += a[ai + d + 1] * b[bi + d + 1];
    s2 += a[ai + d + 2] * b[bi + d + 2];
    s3 += a[ai + d + 3] * b[bi + d + 3];
  }
  for (; d < n; d++) s0 += a[ai + d] * b[bi + d];
  return s0 + s1 + s2 + s3;
}
