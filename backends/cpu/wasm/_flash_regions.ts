/**
 * Where a flash run keeps its data in WebAssembly memory: packed inputs for every head (queries
 * row-major, keys transposed per KV tile, values with rows padded to the gemm's 8 columns), the
 * f32 outputs, and one scratch block (score tile, output tile, row statistics) per thread.
 * Everything is linear in the inputs: no `Nq × Nk` region exists.
 * @module
 */
import type { KernelPlan } from "../../../core/lower.ts";
import { GEMM_COLS, GEMM_ROWS } from "./_gemm.ts";

/** Byte offsets and padded extents of one flash run. */
export interface FlashRegions {
  readonly tileQ: number;
  readonly tileKv: number;
  /** Rows of a score tile, padded to the gemm's row block. */
  readonly tileRows: number;
  /** Columns of a score tile (and rows of a packed K tile), padded to the gemm's column block. */
  readonly tileCols: number;
  /** Query rows per head, padded to the gemm's row block. */
  readonly qRows: number;
  /** Value row length, padded to the gemm's column block. */
  readonly valueCols: number;
  /** KV tiles per head. */
  readonly kvTiles: number;
  readonly q: number;
  readonly kt: number;
  readonly v: number;
  /** One byte per KV tile: whether every value in it is finite (see `tileFinite`). */
  readonly finite: number;
  /** One head of any input as f32 while it is packed, and its f16 bits before widening. */
  readonly staging: number;
  readonly stagingBits: number;
  readonly out: number;
  readonly lse: number;
  /** The task counter, one i32. */
  readonly counter: number;
  /** First scratch block; thread `t` uses `scratch + t · scratchBytes`. */
  readonly scratch: number;
  readonly scratchBytes: number;
  /** Offsets inside a scratch block. */
  readonly scores: number;
  readonly acc: number;
  readonly stats: number;
  /** Bytes in all. */
  readonly bytes: number;
}

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

/** Lays out a run of `plan` with `threads` scratch blocks. */
export function flashRegions(plan: KernelPlan, threads: number): FlashRegions {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  const tileQ = plan.tile.q, tileKv = plan.tile.kv;
  const tileRows = roundUp(tileQ, GEMM_ROWS), tileCols = roundUp(tileKv, GEMM_COLS);
  const qRows = roundUp(Math.max(qLen, 1), tileRows);
  const valueCols = roundUp(valueDim, GEMM_COLS);
  const kvTiles = Math.ceil(kvLen / tileKv);
  let at = 0;
  const take = (bytes: number) => {
    const start = at;
    at = roundUp(at + bytes, 16);
    return start;
  };
  const q = take(4 * batch * heads * qRows * headDim);
  const kt = take(4 * batch * kvHeads * kvTiles * headDim * tileCols);
  const v = take(4 * batch * kvHeads * kvLen * valueCols);
  const finite = take(batch * kvHeads * kvTiles);
  const headElements = roundUp(Math.max(qLen * headDim, kvLen * Math.max(headDim, valueDim)), 4);
  const staging = take(4 * headElements);
  const stagingBits = take(plan.dtype === "f16" ? 2 * headElements : 0);
  const out = take(4 * batch * heads * qLen * valueDim);
  const lse = take(4 * batch * heads * qLen);
  const scores = 0, acc = roundUp(4 * tileRows * tileCols, 16);
  const stats = acc + 4 * tileRows * valueCols;
  const scratchBytes = roundUp(stats + 8 * tileRows, 16);
  const counter = take(4);
  const scratch = take(threads * scratchBytes);
  return {
    tileQ,
    tileKv,
    tileRows,
    tileCols,
    qRows,
    valueCols,
    kvTiles,
    q,
    kt,
    v,
    finite,
    staging,
    stagingBits,
    out,
    lse,
    counter,
    scratch,
    scratchBytes,
    scores,
    acc,
    stats,
    bytes: at,
  };
}
