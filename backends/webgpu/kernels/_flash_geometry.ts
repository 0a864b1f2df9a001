/**
 * The flash kernel's parameters and the geometry they fix: workgroup size, how the one workgroup
 * array is shared between the S and P·V phases, and the per-invocation register blocks. Every
 * fragment of the kernel (staging, products, online softmax, epilogue) reads one `FlashFrame`,
 * so a variant that replaces a fragment agrees with the others on sizes and register names.
 * @module
 */
import type { Expr } from "../../../core/expr.ts";
import type { TileShape } from "../../../core/spec.ts";
import type { DType } from "../../../core/tensor_desc.ts";

/** Compile-time parameters of a flash kernel. */
export interface FlashParams {
  readonly headDim: number;
  readonly valueDim: number;
  readonly dtype: DType;
  /** Query rows × key rows per workgroup; both multiples of 4. */
  readonly tile: TileShape;
  /** Keys per invocation: 4, or 8 for half the invocations and twice the work each. */
  readonly keysPerThread: 4 | 8;
  /** Head-dimension chunk streamed through workgroup memory (a multiple of 8 with `vec`). */
  readonly dk: number;
  /** Keys per V chunk: a power of two dividing `tile.kv`. */
  readonly kc: number;
  /** Times the S and P·V inner loops are unrolled. */
  readonly unroll: number;
  /** Whether q, k and v are read four elements at a time (see `flashVecAligned`). */
  readonly vec: boolean;
  readonly mask?: Expr;
  readonly scoreMod?: Expr;
  /** One sink logit per query head, joining each row's denominator. */
  readonly sinkLogits?: readonly number[];
  /**
   * Row maxima and totals by subgroup shuffles instead of workgroup memory and barriers. Needs
   * the device's "subgroups" feature and subgroups of at least `tile.kv / keysPerThread`
   * invocations (`flashSubgroupsFit`): a row group's invocations are then consecutive lanes of
   * one subgroup.
   */
  readonly subgroups?: boolean;
}

/** What fixes a flash kernel's workgroup size and memory. */
export type FlashShape = Pick<
  FlashParams,
  "tile" | "keysPerThread" | "dk" | "kc" | "valueDim" | "vec"
>;

/** Invocations per workgroup for a tile: one per 4 rows × `keysPerThread` keys of scores. */
export function flashThreads(tile: TileShape, keysPerThread: number): number {
  return (tile.q / 4) * (tile.kv / keysPerThread);
}

/** How a flash kernel lays out its workgroup array. */
export interface Geometry {
  /** vec4 slots per dimension of the Q chunk and of the K chunk (padded unless swizzled). */
  readonly qs: number;
  readonly ks: number;
  /** Whether the Q/K chunks' slots are swizzled instead of padded (see `vecStagingWgsl`). */
  readonly swizzle: boolean;
  /** `vec4` columns of V per invocation and per key. */
  readonly dc: number;
  readonly dvp4: number;
  /** `vec4`s of one Q/K chunk buffer (there are two). */
  readonly chunk: number;
  /** Offset of the V chunk / row reductions, after P. */
  readonly voff: number;
  /** `vec4`s of the workgroup array. */
  readonly slots: number;
}

function geometry(s: FlashShape): Geometry {
  const tq = s.tile.q / 4, kslots = s.tile.kv / 4, tk = s.tile.kv / s.keysPerThread;
  const dc = Math.max(1, Math.ceil(s.valueDim / (4 * tk)));
  const dvp4 = dc * tk;
  const swizzle = s.vec && tq % 8 === 0 && kslots % 8 === 0;
  const [qs, ks] = swizzle ? [tq, kslots] : [tq + 1, kslots + 1];
  const voff = s.tile.kv * tq;
  const chunk = s.dk * (qs + ks);
  const slots = Math.max(2 * chunk, voff + Math.max(s.kc * dvp4, tk * tq));
  return { qs, ks, swizzle, dc, dvp4, chunk, voff, slots };
}

/** Workgroup bytes a flash kernel declares. */
export function flashWorkgroupBytes(s: FlashShape): number {
  return 16 * geometry(s).slots + (s.vec ? 0 : 4 * s.tile.q);
}

/** `vec4` items of global Q/K data each invocation prefetches per head-dimension chunk. */
export function flashPrefetchItems(s: FlashShape): number {
  return Math.ceil(qkItemCount(s) / flashThreads(s.tile, s.keysPerThread));
}

/** `vec4` items of global Q/K data per head-dimension chunk, for the whole workgroup. */
export function qkItemCount(s: FlashShape): number {
  return s.vec ? (s.tile.q + s.tile.kv) * (s.dk / 4) : s.dk * (s.tile.q + s.tile.kv) / 4;
}

/** `[0, n)`: the generator unrolls loops over these at generation time. */
export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
/** An invocation's four query rows, one per `vec4` lane. */
export const ROWS: readonly number[] = range(4);
/** `vec4` lane names, by lane. */
export const XYZW: readonly string[] = ["x", "y", "z", "w"];

/** What every fragment of one flash kernel agrees on. */
export interface FlashFrame {
  readonly params: FlashParams;
  readonly g: Geometry;
  /** Row groups of 4 (`BQ4`), key slots of 4 (`BK4`) and invocations per row group (`TK`). */
  readonly tq: number;
  readonly kslots: number;
  readonly tk: number;
  readonly threads: number;
  /** Groups of 4 keys per invocation, `vec4` columns of O, and prefetched Q/K and V items. */
  readonly groups: number[];
  readonly cols: number[];
  readonly qkItems: number[];
  readonly vItems: number[];
  /** Unrolling of the S loop (over `dk`) and of the P·V loop (over `kc`). */
  readonly uQK: number;
  readonly uPV: number;
  /** Key columns per warp row when each 32 invocations cover 4 × 8 row groups, else 0. */
  readonly warpX: number;
}

/** The frame of a flash kernel. */
export function flashFrame(params: FlashParams): FlashFrame {
  const g = geometry(params);
  const tq = params.tile.q / 4, kslots = params.tile.kv / 4;
  const tk = params.tile.kv / params.keysPerThread;
  const threads = tq * tk;
  return {
    params,
    g,
    tq,
    kslots,
    tk,
    threads,
    groups: range(params.keysPerThread / 4),
    cols: range(g.dc),
    qkItems: range(flashPrefetchItems(params)),
    vItems: range(Math.ceil((params.kc * g.dvp4) / threads)),
    uQK: Math.min(params.unroll, params.dk),
    uPV: Math.min(params.unroll, params.kc),
    // Four key columns × eight row groups per warp when the tile allows it; with subgroups a
    // row group's invocations stay consecutive, so that its shuffles stay in one subgroup.
    warpX: !params.subgroups && tk % 4 === 0 && tq % 8 === 0 && threads % 32 === 0 ? 4 : 0,
  };
}

/** Score register of row `r`, key group `gi`: four keys of one row. */
export const sreg = (r: number, gi: number): string => `s${r}_${gi}`;
/** Output register of row `r`, column `i`: four value dims of one row. */
export const acc = (r: number, i: number): string => `o${r}_${i}`;
/** One generated statement per item (e.g. per prefetched load), as one fragment. */
export const each = (items: number[], line: (j: number) => string): string =>
  items.map((j) => line(j)).join("\n      ");
/** This invocation's `j`-th item of a workgroup-wide load. */
export const item = (f: FlashFrame, j: number): string => `lid + ${j * f.threads}u`;

/**
 * Whether subgroups of `minSize` invocations hold whole row groups of a flash tile: the row
 * group's `tile.kv / keysPerThread` invocations a power of two no larger than the subgroup.
 */
export function flashSubgroupsFit(
  tile: TileShape,
  keysPerThread: number,
  minSize: number,
): boolean {
  const tk = tile.kv / keysPerThread;
  return Number.isInteger(tk) && tk > 0 && (tk & (tk - 1)) === 0 && tk <= minSize;
}
