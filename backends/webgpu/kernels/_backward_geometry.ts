/**
 * Sizes of the flash backward's register-block kernel (`_backward_blocks_wgsl.ts`): tile, chunks,
 * register blocks and the one workgroup array its two phases share. A workgroup of `(T/4)²`
 * invocations (twice that for `kv`, one half for S/dV, one for dP/dK) owns `T` rows and walks
 * tiles of `T` rows:
 *
 * - phase A (S and dP): each invocation a 4 owned × 4 walked block of both (of one for `kv`), the
 *   head dim
 *   streamed in double-buffered chunks of `DK` dims, the four operands stored transposed
 *   (`[dim][row/4]` vec4s, rows padded by one vec4 so that the transposing stores hit distinct
 *   banks);
 * - phase B (dK and dV, or dQ): P and dS go to workgroup memory as `[walked row][owned row/4]`,
 *   each invocation accumulates 4 owned rows × `dc` vec4 columns of each gradient, reading the
 *   walked rows' Q and dO (or K) in chunks of `rc` rows stored `[row][dim/4]`.
 * @module
 */

/** Head-dimension chunk of phase A: at least the row groups, so each prefetched item has one
 * operand known at generation time. */
export const BLOCK_DK = 16;
/** Most `vec4`s an invocation prefetches for one phase-B chunk. */
const MAX_ITEMS = 8;

/** What fixes a block kernel's sizes. */
export interface BlockShape {
  /** `kv`: a workgroup owns a key tile (dK, dV); `q`: a query tile (dQ). */
  readonly mode: "kv" | "q";
  /** Rows of an owned and of a walked tile: 16, 32 or 64. */
  readonly tile: number;
  readonly headDim: number;
  readonly valueDim: number;
}

/** The sizes every fragment of a block kernel agrees on; slots are `vec4`s. */
export interface BlockGeometry {
  readonly tile: number;
  /** Row groups of 4 per tile (`G`). */
  readonly groups: number;
  /** Invocations: `G × G` for `q`; twice that for `kv`, whose halves split S/dV and dP/dK. */
  readonly threads: number;
  /** Dims phase A streams (the larger of the head and value dims, whole chunks). */
  readonly dimsA: number;
  /** Row stride of a phase-A operand, per dim, and the slots of one operand and one buffer. */
  readonly aStride: number;
  readonly opSlots: number;
  readonly chunkSlots: number;
  /** Prefetched phase-A items per invocation (`BLOCK_DK / G` per operand it stages). */
  readonly itemsA: number;
  /** `vec4` columns per invocation of the head-dim and value-dim gradients. */
  readonly dcD: number;
  readonly dcV: number;
  /** Padded `vec4` row lengths of the phase-B operands (`dc · G`). */
  readonly d4p: number;
  readonly v4p: number;
  /** Slots of P (`kv` only) and of dS, `[walked row][G]` each. */
  readonly weightSlots: number;
  /** Walked rows per phase-B chunk, the chunk's slots and an invocation's share of its items. */
  readonly rc: number;
  readonly xSlots: number;
  readonly itemsB: number;
  readonly slots: number;
}

function layout(s: BlockShape, rc: number): BlockGeometry {
  const kv = s.mode === "kv";
  const tile = s.tile, groups = tile / 4, threads = (kv ? 2 : 1) * groups * groups;
  const dimsA = Math.max(1, Math.ceil(Math.max(s.headDim, s.valueDim) / BLOCK_DK)) * BLOCK_DK;
  const aStride = groups + 1, opSlots = BLOCK_DK * aStride, chunkSlots = 4 * opSlots;
  const dcD = Math.max(1, Math.ceil(s.headDim / 4 / groups));
  const dcV = Math.max(1, Math.ceil(s.valueDim / 4 / groups));
  const d4p = dcD * groups, v4p = dcV * groups;
  const weightSlots = tile * groups;
  const xSlots = rc * (d4p + (kv ? v4p : 0));
  return {
    tile,
    groups,
    threads,
    dimsA,
    aStride,
    opSlots,
    chunkSlots,
    itemsA: (kv ? 2 : 4) * BLOCK_DK / groups,
    dcD,
    dcV,
    d4p,
    v4p,
    weightSlots,
    rc,
    xSlots,
    itemsB: Math.ceil(xSlots / threads),
    slots: Math.max(2 * chunkSlots, (kv ? 2 : 1) * weightSlots + xSlots),
  };
}

/**
 * A block kernel's geometry within `maxBytes` of workgroup memory: the phase-B chunk the largest
 * power of two of rows that fits with at most eight prefetched items per invocation (the `q` pass
 * at D128 then reads its walked tile in one chunk: 2 barriers fewer per tile pair, 0.2 ms of 39 on
 * an H100).
 *
 * @returns The geometry, or undefined if even one row per chunk does not fit.
 */
export function blockGeometry(s: BlockShape, maxBytes: number): BlockGeometry | undefined {
  const fits = (g: BlockGeometry) => 16 * g.slots <= maxBytes;
  for (let rc = s.tile; rc >= 1; rc /= 2) {
    const g = layout(s, rc);
    if (fits(g) && (g.itemsB <= MAX_ITEMS || rc === 1)) return g;
  }
  return undefined;
}
