/**
 * `lower()`: the pure step from spec to kernel plan. It picks the kernel family and tile shape
 * from the spec and the backend's capabilities (small tables, no device calls) and classifies
 * the mask into a block layout. Equal specs and caps give equal plans and keys.
 * @module
 */
import { hashString } from "./_hash.ts";
import { UnsupportedSpecError } from "./errors.ts";
import { exprKey } from "./expr_tree.ts";
import {
  assertSpec,
  type AttentionSpec,
  type KernelFamily,
  type SpecSizes,
  specSizes,
} from "./spec.ts";
import { chooseFlashTile, type TileChoice } from "./_tile_choice.ts";
import { assertHierarchy } from "./hierarchy.ts";
import type { LinearNormalizer } from "./linear.ts";
import { linearChunk, normalizerJson, planNormalizer, refuseWithLinear } from "./_linear_lower.ts";
import { lowRankJson, lowRankPlan, projectedSpec } from "./_low_rank_lower.ts";
import { pagedTile, refuseWithPaging } from "./_paged_lower.ts";
import { assertObject, fail, show } from "./_check.ts";
import { type BackendCaps, type KernelPlan, MAX_SPLITS } from "./kernel_plan.ts";
export type { BackendCaps, FlashTileRule, KernelPlan } from "./kernel_plan.ts";
export { MAX_SPLITS } from "./kernel_plan.ts";
import {
  assertCaps,
  assertHeadParams,
  assertSizesFit,
  atMost,
  MAX_TILES,
} from "./_lower_checks.ts";

/**
 * Key splits for a flash plan whose query rows fit one tile (decode, short appends): enough
 * workgroups to reach the backend's parallelism, each split keeping at least four key tiles, at
 * most `MAX_SPLITS`. Their states then cost `splits × Nq` rows, next to nothing; longer queries
 * have row tiles enough to keep a device busy.
 */
function chooseSplits(caps: BackendCaps, units: number, rows: number, kvTiles: number): number {
  const items = units * rows;
  if (!caps.parallelism || items === 0 || rows > 1) return 1;
  const wanted = Math.floor(caps.parallelism / items);
  return Math.max(1, Math.min(wanted, Math.floor(kvTiles / 4), MAX_SPLITS));
}

function refuse(caps: BackendCaps, field: string, value: unknown): never {
  throw new UnsupportedSpecError(caps.backend, field, value);
}

/**
 * Hierarchical attention defines its own causal structure and normalization: it runs alone,
 * without a mask, score modifier, sink logits, tile or per-key outputs.
 */
function refuseWithHierarchy(spec: AttentionSpec, caps: BackendCaps): void {
  const extras = {
    mask: spec.mask && "a mask",
    scoreMod: spec.scoreMod && "a score modifier",
    sinkLogits: spec.sinkLogits && "sink logits",
    tile: spec.tile && `${spec.tile.q}x${spec.tile.kv}`,
    "outputs.lse": spec.outputs.lse || undefined,
    "outputs.probs": spec.outputs.probs || undefined,
  };
  for (const [field, value] of Object.entries(extras)) {
    if (value !== undefined) refuse(caps, `${field} with hierarchical()`, value);
  }
}

function chooseFamily(spec: AttentionSpec, caps: BackendCaps, sizes: SpecSizes): KernelFamily {
  if (spec.paging || spec.kernel === "paged") {
    refuseWithPaging(spec, caps);
    return "paged";
  }
  if (spec.normalizer !== "softmax" || spec.kernel === "linear") {
    refuseWithLinear(spec, caps);
    if (!caps.families.includes("linear")) refuse(caps, "kernel", "linear");
    return "linear";
  }
  if (spec.hierarchy || spec.kernel === "hierarchical") {
    if (!spec.hierarchy) refuse(caps, "kernel without hierarchical()", "hierarchical");
    if (spec.kernel !== undefined && spec.kernel !== "hierarchical") {
      refuse(caps, "kernel with hierarchical()", spec.kernel);
    }
    refuseWithHierarchy(spec, caps);
    if (!caps.families.includes("hierarchical")) refuse(caps, "kernel", "hierarchical");
    return "hierarchical";
  }
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

function chooseTile(spec: AttentionSpec, caps: BackendCaps, sizes: SpecSizes): TileChoice {
  const dim = Math.max(sizes.headDim, sizes.valueDim);
  const rules = caps.flashTiles.filter((r) => dim <= r.maxHeadDim);
  if (rules.length === 0) refuse(caps, "headDim", dim);
  if (!spec.tile) {
    const pack = caps.packGroups && sizes.heads > 0 ? sizes.heads / sizes.kvHeads : 1;
    return chooseFlashTile(rules.map((r) => r.tile), caps.anyTile, spec.mask, sizes.qLen * pack);
  }
  const allowed = caps.anyTile ||
    rules.some((r) => r.tile.q === spec.tile!.q && r.tile.kv === spec.tile!.kv);
  if (!allowed) refuse(caps, "tile", `${spec.tile.q}x${spec.tile.kv}`);
  return { tile: spec.tile, reason: "requested" };
}

/** Plans known to be valid, with the caps they were checked against (`null`: none). */
const valid = new WeakMap<object, Set<BackendCaps | null>>();

/**
 * `tileReason`: when re-lowering a plan (whose tile is then given), the reason it recorded; the
 * reason is informational and not re-derived.
 */
function lowerSpec(
  spec: AttentionSpec,
  caps: BackendCaps,
  context: string,
  tileReason?: string,
  splits?: number,
): KernelPlan {
  assertSpec(spec, context);
  assertCaps(caps, context);
  if (spec.lowRank) {
    const inner = lowerSpec(
      projectedSpec({ ...spec, lowRank: spec.lowRank }, caps, context),
      caps,
      context,
      tileReason,
      splits,
    );
    const plan = lowRankPlan(inner, { ...spec, lowRank: spec.lowRank });
    valid.set(plan, new Set([caps, null]));
    return plan;
  }
  const sizes = specSizes(spec);
  if (sizes.kvHeads !== sizes.heads && !spec.groupedHeads) {
    throw new RangeError(
      `Cannot ${context}: k.shape[1] must equal q heads (${sizes.heads}) unless groupHeads() is applied, current value is ${sizes.kvHeads}`,
    );
  }
  assertHeadParams(spec, sizes.heads, context);
  if (!caps.dtypes.includes(spec.q.dtype)) refuse(caps, "dtype", spec.q.dtype);
  if (Math.max(sizes.headDim, sizes.valueDim) > caps.maxHeadDim) {
    refuse(caps, "headDim", Math.max(sizes.headDim, sizes.valueDim));
  }
  const family = chooseFamily(spec, caps, sizes);
  assertSizesFit(spec, sizes, family, context);
  if (spec.hierarchy) assertHierarchy(spec.hierarchy, context, { ...sizes, dtype: spec.q.dtype });
  const linear = spec.normalizer !== "softmax" ? spec.normalizer : undefined;
  const groups = caps.packGroups && sizes.heads > 0 ? sizes.heads / sizes.kvHeads : 1;
  const choice = linear
    ? linearChunk({ ...spec, normalizer: linear }, sizes, context)
    : family === "paged"
    ? pagedTile(sizes, groups)
    : spec.hierarchy
    ? { tile: { q: 1, kv: spec.hierarchy.block }, reason: "hierarchical: a query row per thread" }
    : chooseTile(spec, caps, sizes);
  const tile = choice.tile;
  const pack = family === "flash" || family === "paged" ? groups : 1;
  const tiles = Math.ceil((sizes.qLen * pack) / tile.q) * Math.ceil(sizes.kvLen / tile.kv);
  if (family === "flash" || family === "materialized") {
    atMost(context, `block layout tiles for tile ${tile.q}x${tile.kv}`, MAX_TILES, "2^28", tiles);
  }

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
    ...(spec.sinkLogits ? { sinkLogits: spec.sinkLogits } : {}),
    ...(spec.hierarchy ? { hierarchy: spec.hierarchy } : {}),
    ...(spec.paging ? { paging: spec.paging } : {}),
    normalizer: linear ? planNormalizer(linear, tile.kv) : "softmax" as const,
    tile,
    tileReason: tileReason ?? choice.reason,
    pack,
    outputs: spec.outputs,
    materializedScratch: caps.materializedScratch,
    engine: caps.engine,
    splits: splits ??
      (family === "flash" || family === "paged"
        ? chooseSplits(
          caps,
          (sizes.batch * sizes.heads) / pack,
          Math.ceil((sizes.qLen * pack) / tile.q),
          Math.ceil(sizes.kvLen / tile.kv),
        )
        : 1),
  };
  const plan = Object.freeze({ ...body, key: hashString(bodyJson(body)) });
  valid.set(plan, new Set([caps, null]));
  return plan;
}

/** A plan's fields as lower() hashes them: Exprs by their keys. */
const FIELDS = [
  "backend",
  "family",
  "sizes",
  "dtype",
  "q",
  "k",
  "v",
  "scale",
  "mask",
  "scoreMod",
  "sinkLogits",
  "hierarchy",
  "paging",
  "normalizer",
  "tile",
  "tileReason",
  "pack",
  "outputs",
  "materializedScratch",
  "engine",
  "splits",
] as const;

function fieldJson(plan: Omit<KernelPlan, "key">, field: typeof FIELDS[number]): string {
  const value = plan[field];
  if (field === "mask" || field === "scoreMod") {
    return JSON.stringify(value && exprKey(value as NonNullable<KernelPlan["mask"]>));
  }
  if (field === "normalizer") return normalizerJson(value);
  return JSON.stringify(value);
}

function bodyJson(plan: Omit<KernelPlan, "key">): string {
  return `{${FIELDS.map((f) => `${JSON.stringify(f)}:${fieldJson(plan, f)}`).join(",")}}`;
}

/**
 * Lowers a spec to a kernel plan for a backend's capabilities.
 *
 * @param spec The attention spec (re-checked: hand-built or edited specs are validated).
 * @param caps The backend's capabilities.
 * @returns A frozen, JSON-serializable plan.
 * @throws {RangeError} If KV heads differ from query heads without `groupHeads()`, a head
 * parameter does not hold one value per query head, or a size is beyond the kernels' 32-bit
 * arithmetic (any dimension over 2^30; q, k, v extents, out, lse, probs or per-head scores over
 * 2^32 elements), naming the field and value.
 * @throws {TypeError} For a spec or caps field of the wrong kind.
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
  return lowerSpec(spec, caps, "lower attention");
}

/** Caps that let lower() make exactly a plan's own choices: family, tile, packing. */
function capsOf(plan: KernelPlan): BackendCaps {
  return {
    backend: plan.backend,
    families: [plan.family],
    dtypes: [plan.dtype],
    flashTiles: [{ maxHeadDim: Infinity, tile: plan.tile }],
    anyTile: true,
    maxHeadDim: Infinity,
    materializeUpTo: 0,
    materializedScratch: plan.materializedScratch,
    packGroups: plan.pack > 1,
    engine: plan.engine,
  };
}

/**
 * Checks that a plan is what `lower()` makes of its own spec (for `caps`, when given): plans
 * from `lower()` pass at once; edited, hand-built or deserialized ones are re-lowered and
 * compared field by field, so that no edit (a NaN scale, a block layout or size that no longer
 * matches) reaches a kernel. Backends call it before any work.
 *
 * @param plan The value.
 * @param caps The running backend's capabilities.
 * @throws {TypeError} / {RangeError} Naming the first bad or inconsistent field and its value.
 * @throws {UnsupportedSpecError} If `caps` cannot run the plan.
 * @example
 * ```ts
 * import { assertPlan, attention, lower, tensorDesc } from "@attend/attend/core";
 * import { cpuCaps } from "@attend/attend/cpu";
 * import { assertThrows } from "@std/assert";
 * const x = tensorDesc([1, 1, 4, 8]);
 * const plan = lower(attention(x, x, x), cpuCaps);
 * assertPlan(JSON.parse(JSON.stringify(plan)), cpuCaps);
 * assertThrows(() => assertPlan({ ...plan, scale: NaN }), RangeError, "scale must be a finite number");
 * ```
 */
export function assertPlan(plan: unknown, caps?: BackendCaps): asserts plan is KernelPlan {
  const context = "run plan";
  assertObject(plan, context, "plan", "a KernelPlan from lower()");
  if (caps !== undefined) {
    assertCaps(caps, context);
    if (plan.backend !== caps.backend) {
      fail("type", context, "plan.backend", show(caps.backend), plan.backend);
    }
  }
  if (valid.get(plan)?.has(caps ?? null)) return;
  const p = plan as unknown as KernelPlan;
  for (
    const field of [
      "backend",
      "family",
      "dtype",
      "key",
      "materializedScratch",
      "engine",
    ]
  ) {
    if (typeof plan[field] !== "string") {
      fail("type", context, `plan.${field}`, "a string", plan[field]);
    }
  }
  assertObject(plan.tile, context, "plan.tile", "an object { q, kv }");
  if (!Number.isInteger(plan.pack)) fail("type", context, "plan.pack", "an integer", plan.pack);
  const splittable = plan.family === "flash" || plan.family === "paged";
  const splitsWanted = splittable ? `an integer in 1..${MAX_SPLITS}` : "1";
  if (typeof plan.splits !== "number") {
    fail("type", context, "plan.splits", "a number", plan.splits);
  }
  if (
    !Number.isInteger(plan.splits) || plan.splits < 1 ||
    plan.splits > (splittable ? MAX_SPLITS : 1)
  ) {
    fail("range", context, "plan.splits", splitsWanted, plan.splits);
  }
  const expected = lowerSpec(
    {
      q: p.q,
      k: p.k,
      v: p.v,
      scale: p.scale,
      ...(p.mask !== undefined ? { mask: p.mask } : {}),
      ...(p.scoreMod !== undefined ? { scoreMod: p.scoreMod } : {}),
      ...(p.sinkLogits !== undefined ? { sinkLogits: p.sinkLogits } : {}),
      ...(p.hierarchy !== undefined ? { hierarchy: p.hierarchy } : {}),
      ...(p.paging !== undefined ? { paging: p.paging } : {}),
      ...(p.lowRank !== undefined && p.lowRank !== null
        ? { k: p.lowRank.k, v: p.lowRank.v, lowRank: { e: p.lowRank.e, f: p.lowRank.f } }
        : {}),
      groupedHeads: true,
      normalizer: p.normalizer as "softmax" | LinearNormalizer,
      ...(p.family === "flash" || p.family === "materialized" ? { tile: p.tile } : {}),
      kernel: p.family,
      outputs: p.outputs,
    },
    caps ?? capsOf(p),
    context,
    p.tileReason,
    p.splits,
  );
  for (const field of FIELDS) {
    const want = fieldJson(expected, field), got = fieldJson(p, field);
    if (want !== got) {
      const cut = (text = "undefined") => text.length > 60 ? `${text.slice(0, 60)}…` : text;
      throw new RangeError(
        `Cannot ${context}: plan.${field} must be ${
          cut(want)
        } as lower() gives for the plan's spec, current value is ${cut(got)}`,
      );
    }
  }
  if (lowRankJson(p.lowRank) !== lowRankJson(expected.lowRank)) {
    fail("range", context, "plan.lowRank", "what lower() gives for the plan's spec", p.lowRank);
  }
  if (p.key !== expected.key) fail("range", context, "plan.key", expected.key, p.key);
  if (Object.isFrozen(plan)) valid.set(plan, (valid.get(plan) ?? new Set()).add(caps ?? null));
}
