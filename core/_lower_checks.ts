/**
 * The checks `lower()` runs beyond the spec's own: capabilities, head parameters that match the
 * head count, and sizes within the kernels' 32-bit index and position arithmetic.
 * @module
 */
import { headParams } from "./expr_tree.ts";
import type { AttentionSpec, KernelFamily, SpecSizes } from "./spec.ts";
import { extent, type TensorDesc } from "./tensor_desc.ts";
import type { BackendCaps } from "./lower.ts";
import { assertObject, fail, hasKind, kindName, MAX_SIZE, type OptionKind } from "./_check.ts";

/** Elements a 32-bit kernel index reaches. */
const MAX_ELEMENTS = 2 ** 32;
/** Tiles of a block layout: a plan holds them as a string, whose length V8 caps near 2^29. */
export const MAX_TILES = 2 ** 28;

/** Refuses a size over a limit, naming what limits it. */
export function atMost(
  context: string,
  field: string,
  limit: number,
  why: string,
  value: number,
): void {
  if (value > limit) fail("range", context, field, `at most ${limit} (${why})`, value);
}

/** Refuses sizes the kernels' 32-bit index and position arithmetic cannot address. */
export function assertSizesFit(
  spec: AttentionSpec,
  sizes: SpecSizes,
  family: KernelFamily,
  context: string,
): void {
  const { batch, heads, qLen, kvLen, valueDim } = sizes;
  for (const role of ["q", "k", "v"] as const) {
    const d: TensorDesc = spec[role];
    d.shape.forEach((size, dim) =>
      atMost(context, `${role}.shape[${dim}]`, MAX_SIZE, "2^30, 32-bit positions", size)
    );
    atMost(context, `${role} extent`, MAX_ELEMENTS, "elements, 32-bit indices", extent(d));
  }
  const elements = (what: string, n: number) =>
    atMost(context, what, MAX_ELEMENTS, "elements, 32-bit indices", n);
  elements("out size (B·Hq·Nq·Dv)", batch * heads * qLen * valueDim);
  elements("lse size (B·Hq·Nq)", batch * heads * qLen);
  if (family === "materialized") elements("scores per head (Nq·Nk)", qLen * kvLen);
  if (spec.outputs.probs) elements("probs size (B·Hq·Nq·Nk)", batch * heads * qLen * kvLen);
}

/** Refuses head parameters without exactly one value per query head. */
export function assertHeadParams(spec: AttentionSpec, heads: number, context: string): void {
  if (spec.sinkLogits && spec.sinkLogits.length !== heads) {
    fail("range", context, "sinkLogits.length", `q heads (${heads})`, spec.sinkLogits.length);
  }
  for (const [field, e] of [["mask", spec.mask], ["scoreMod", spec.scoreMod]] as const) {
    for (const p of e ? headParams(e) : []) {
      if (p.op === "headParam" && p.values.length !== heads) {
        fail(
          "range",
          context,
          `${field} headParam values.length`,
          `q heads (${heads})`,
          p.values.length,
        );
      }
    }
  }
}

const CAPS: Readonly<Record<keyof BackendCaps, OptionKind>> = {
  backend: "string",
  families: "array",
  dtypes: "array",
  flashTiles: "array",
  anyTile: "boolean",
  maxHeadDim: "number",
  materializeUpTo: "number",
  materializedScratch: "string",
  packGroups: "boolean",
  engine: "string",
  parallelism: "number",
};

/** Checks the kind of every field of a backend's capabilities. */
export function assertCaps(caps: unknown, context: string): asserts caps is BackendCaps {
  assertObject(caps, context, "caps", "a backend's BackendCaps");
  for (const [key, kind] of Object.entries(CAPS)) {
    if (key === "parallelism" && caps[key] === undefined) continue;
    if (!hasKind(caps[key], kind)) fail("type", context, `caps.${key}`, kindName(kind), caps[key]);
  }
}
