/**
 * The data `lower()` works between: what a backend tells it (`BackendCaps`) and what it gives
 * back (`KernelPlan`). Plain, JSON-serializable types.
 * @module
 */
import type { AttentionSpec, KernelFamily, SpecSizes, TileShape } from "./spec.ts";
import type { DType } from "./tensor_desc.ts";
import type { LowRankPlan } from "./low_rank.ts";

/** A row of a backend's flash tile table: the tile used up to a head dimension. */
export interface FlashTileRule {
  /** Largest `max(D, Dv)` this rule covers. */
  readonly maxHeadDim: number;
  /** Tile shape used. */
  readonly tile: TileShape;
}

/** What a backend tells `lower()` about itself. Plain data. */
export interface BackendCaps {
  /** Backend name, copied into plans. */
  readonly backend: string;
  /** Kernel families it runs. */
  readonly families: readonly KernelFamily[];
  /** Storage dtypes it runs. */
  readonly dtypes: readonly DType[];
  /** Flash tiles by head dimension, first match wins. */
  readonly flashTiles: readonly FlashTileRule[];
  /** Whether a requested tile shape may differ from the table's. */
  readonly anyTile: boolean;
  /** Largest `max(D, Dv)` the kernels handle. */
  readonly maxHeadDim: number;
  /** Without a requested family, score matrices up to this many elements use materialized. */
  readonly materializeUpTo: number;
  /** Whether the materialized kernel holds one head's scores at a time, or all heads'. */
  readonly materializedScratch: "per-head" | "all-heads";
  /** Whether flash tiles interleave a KV head's query heads, reading each KV tile once. */
  readonly packGroups: boolean;
  /**
   * What executes the kernels, copied into plans and shown by `explain()`: `typescript`,
   * `wasm-simd` or `wasm-relaxed-simd` on the CPU, `wgsl` on WebGPU.
   */
  readonly engine: string;
  /**
   * Workgroups the backend wants in flight. Flash plans with fewer (a query tile per sequence and
   * head, as in decode) split each row of tiles' keys over several workgroups and merge their
   * states (Flash-Decoding). Absent: never split.
   */
  readonly parallelism?: number;
}

/**
 * A kernel plan: what to run, JSON-serializable. It keeps the spec's descriptors, scale, mask and
 * score modifier as they were, except in a low-rank plan, whose `k`, `v` and `sizes` are those of
 * the projected rows the attention kernel reads (the inputs' are in `lowRank`).
 */
export interface KernelPlan extends
  Pick<
    AttentionSpec,
    | "q"
    | "k"
    | "v"
    | "scale"
    | "mask"
    | "scoreMod"
    | "sinkLogits"
    | "hierarchy"
    | "paging"
    | "normalizer"
    | "outputs"
  > {
  /** Backend the plan is for. */
  readonly backend: string;
  /** Kernel family. */
  readonly family: KernelFamily;
  /** Stable hash of everything below. */
  readonly key: string;
  /** Sizes read from the descriptors. */
  readonly sizes: SpecSizes;
  /** Storage dtype of q, k, v and out. */
  readonly dtype: DType;
  /** Tile shape (for materialized: the block-classification tile only). */
  readonly tile: TileShape;
  /** Why this tile: `requested`, `preferred`, or the mask structure it follows. */
  readonly tileReason: string;
  /** Query heads interleaved in a tile's rows: the group size when packed, else 1. */
  readonly pack: number;
  /** Bytes per score element the materialized kernel keeps, for explain(). */
  readonly materializedScratch: "per-head" | "all-heads";
  /** What executes the kernels (the caps' `engine`). */
  readonly engine: string;
  /**
   * Workgroups each query tile's listed key tiles are split over (1: none). Each writes the
   * state `{ out, lse }` of its share, and a merge pass combines them exactly.
   */
  readonly splits: number;
  /** Linformer's projections and the key and value inputs they project (`lowRank()`). */
  readonly lowRank?: LowRankPlan;
}

/** The most key splits a flash plan uses. */
export const MAX_SPLITS = 64;
