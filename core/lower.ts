/**
 * `lower()`: the pure step from spec to kernel plan. It picks the kernel family and tile shape
 * from the spec and the backend's capabilities (small tables, no device calls) and classifies
 * the mask into a block layout. Equal specs and caps give equal plans and keys.
 * @module
 */
import { hashString } from "./_hash.ts";
import { type BlockLayout, classifyBlocks } from "./classify_blocks.ts";
import { UnsupportedSpecError } from "./errors.ts";
import { exprKey } from "./expr.ts";
import {
  type AttentionSpec,
  type KernelFamily,
  type SpecSizes,
  specSizes,
  type TileShape,
} from "./spec.ts";
import type { DType } from "./tensor_desc.ts";

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
}

/**
 * A kernel plan: what to run, JSON-serializable. It keeps the spec's descriptors, scale, mask and
 * score modifier as they were.
 */
export interface KernelPlan
  extends Pick<AttentionSpec, "q" | "k" | "v" | "scale" | "mask" | "scoreMod" | "outputs"> {
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
  /** Query heads interleaved in a tile's rows: the group size when packed, else 1. */
  readonly pack: number;
  /** BlockKinds of the layout as a string of digits `0`/`1`/`2`, row-major. */
  readonly blockKinds: string;
  /** Bytes per score element the materialized kernel keeps, for explain(). */
  readonly materializedScratch: "per-head" | "all-heads";
}

function refuse(caps: BackendCaps, field: string, value: unknown): never {
  throw new UnsupportedSpecError(caps.backend, field, value);
}

function chooseFamily(spec: AttentionSpec, caps: BackendCaps, sizes: SpecSizes): KernelFamily {
  if (spec.kernel === "flash" && spec.outputs.probs) {
    refuse(caps, "outputs.probs with kernel", "flash");
  }
  const family = spec.kernel ??
    (spec.outputs.probs || sizes.qLen * sizes.kvLen <= caps.materializeUpTo ||
        !caps.families.includes("flash")
      ? "materialized"
      : "flash");
  if (!caps.families.includes(family)) refuse(caps, "kernel", family);
  return family;
}

function chooseTile(spec: AttentionSpec, caps: BackendCaps, sizes: SpecSizes): TileShape {
  const dim = Math.max(sizes.headDim, sizes.valueDim);
  const rule = caps.flashTiles.find((r) => dim <= r.maxHeadDim);
  if (!rule) refuse(caps, "headDim", dim);
  if (!spec.tile) return rule.tile;
  const allowed = caps.anyTile ||
    caps.flashTiles.some((r) =>
      dim <= r.maxHeadDim && r.tile.q === spec.tile!.q && r.tile.kv === spec.tile!.kv
    );
  if (!allowed) refuse(caps, "tile", `${spec.tile.q}x${spec.tile.kv}`);
  return spec.tile;
}

/**
 * Lowers a spec to a kernel plan for a backend's capabilities.
 *
 * @param spec The attention spec.
 * @param caps The backend's capabilities.
 * @returns A frozen, JSON-serializable plan.
 * @throws {RangeError} If KV heads differ from query heads without `groupHeads()`.
 * @throws {UnsupportedSpecError} If the backend cannot run the spec, naming the field.
 * @example
 * ```ts
 * import { attention, causal, lower, mask, tensorDesc } from "@attend/attend/core";
 * import { cpuCaps } from "@attend/attend/cpu";
 * const x = tensorDesc([1, 2, 256, 64]);
 * const plan = lower(mask(causal())(attention(x, x, x)), cpuCaps);
 * if (plan.family !== "flash") throw new Error("long sequences use flash");
 * if (plan.key !== lower(mask(causal())(attention(x, x, x)), cpuCaps).key) throw new Error();
 * ```
 */
export function lower(spec: AttentionSpec, caps: BackendCaps): KernelPlan {
  const sizes = specSizes(spec);
  if (sizes.kvHeads !== sizes.heads && !spec.groupedHeads) {
    throw new RangeError(
      `Cannot lower attention: k.shape[1] must equal q heads (${sizes.heads}) unless groupHeads() is applied, current value is ${sizes.kvHeads}`,
    );
  }
  if (!caps.dtypes.includes(spec.q.dtype)) refuse(caps, "dtype", spec.q.dtype);
  if (Math.max(sizes.headDim, sizes.valueDim) > caps.maxHeadDim) {
    refuse(caps, "headDim", Math.max(sizes.headDim, sizes.valueDim));
  }
  const family = chooseFamily(spec, caps, sizes);
  const tile = chooseTile(spec, caps, sizes);
  // A tile packs a KV head's query heads: at least one row set, even with no query heads.
  const pack = family === "flash" && caps.packGroups ? Math.max(1, sizes.heads / sizes.kvHeads) : 1;
  const layout = classifyBlocks(spec.mask, { ...sizes, tileQ: tile.q, tileKv: tile.kv, pack });
  const body = {
    backend: caps.backend,
    family,
    sizes: Object.freeze(sizes),
    dtype: spec.q.dtype,
    q: spec.q,
    k: spec.k,
    v: spec.v,
    scale: spec.scale,
    ...(spec.mask ? { mask: spec.mask } : {}),
    ...(spec.scoreMod ? { scoreMod: spec.scoreMod } : {}),
    tile,
    pack,
    blockKinds: layout.kinds.join(""),
    outputs: spec.outputs,
    materializedScratch: caps.materializedScratch,
  };
  const key = hashString(JSON.stringify({
    ...body,
    mask: spec.mask && exprKey(spec.mask),
    scoreMod: spec.scoreMod && exprKey(spec.scoreMod),
  }));
  return Object.freeze({ ...body, key });
}

const layouts = new WeakMap<KernelPlan, BlockLayout>();

/** The plan's block layout as typed data (decoded once per plan). */
export function planLayout(plan: KernelPlan): BlockLayout {
  const known = layouts.get(plan);
  if (known) return known;
  const { tile, sizes, pack } = plan;
  const kinds = Uint8Array.from(plan.blockKinds, (c) => c.charCodeAt(0) - 48);
  const layout = Object.freeze({
    tileQ: tile.q,
    tileKv: tile.kv,
    pack,
    rows: Math.ceil((sizes.qLen * pack) / tile.q),
    cols: Math.ceil(sizes.kvLen / tile.kv),
    kinds,
  });
  layouts.set(plan, layout);
  return layout;
}
