/**
 * What `lower()` decides for a paged spec (see `page()`): which other features it refuses, and
 * the tile, `rows × keys`, that the paged kernel walks a sequence's keys by.
 * @module
 */
import { UnsupportedSpecError } from "./errors.ts";
import type { AttentionSpec, SpecSizes } from "./spec.ts";
import type { BackendCaps } from "./kernel_plan.ts";
import type { TileChoice } from "./_tile_choice.ts";

/** Query rows (heads packed) one paged workgroup holds at most. */
export const PAGED_ROWS = 16;
/** Keys a paged kernel scores per step. */
export const PAGED_KEYS = 64;

/**
 * Refuses what a paged spec cannot have: other families, requested tiles, probabilities,
 * hierarchical branches and low-rank projections, naming the field.
 */
export function refuseWithPaging(spec: AttentionSpec, caps: BackendCaps): void {
  const extras = {
    kernel: spec.kernel !== undefined && spec.kernel !== "paged" ? spec.kernel : undefined,
    normalizer: spec.normalizer !== "softmax" ? "linear" : undefined,
    tile: spec.tile && `${spec.tile.q}x${spec.tile.kv}`,
    hierarchy: spec.hierarchy && "hierarchical()",
    lowRank: spec.lowRank && "lowRank()",
    "outputs.probs": spec.outputs.probs || undefined,
  };
  for (const [field, value] of Object.entries(extras)) {
    if (value !== undefined) {
      throw new UnsupportedSpecError(caps.backend, `${field} with page()`, value);
    }
  }
  if (!spec.paging) throw new UnsupportedSpecError(caps.backend, "kernel without page()", "paged");
  if (!caps.families.includes("paged")) {
    throw new UnsupportedSpecError(caps.backend, "kernel", "paged");
  }
}

/** A paged plan's tile: all of a sequence's query rows (heads packed) up to 16, 64 keys a step. */
export function pagedTile(sizes: SpecSizes, pack: number): TileChoice {
  const rows = Math.max(1, Math.min(PAGED_ROWS, sizes.qLen * pack));
  return {
    tile: { q: rows, kv: PAGED_KEYS },
    reason: `paged: ${rows} of ${sizes.qLen * pack} query rows a workgroup`,
  };
}
