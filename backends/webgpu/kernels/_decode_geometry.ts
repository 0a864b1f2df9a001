/**
 * The decode kernel's parameters and the geometry they fix: how a workgroup's invocations split
 * the scores (per key, over rows and head-dimension slices), the softmax (lanes per row) and
 * P·V (value `vec4`s × key subsets), and the workgroup memory that takes; and `decodeFits`, the
 * test of whether a plan runs on the decode kernel.
 * @module
 */
import type { KernelPlan } from "../../../core/lower.ts";
import type { Expr } from "../../../core/expr.ts";
import type { DType } from "../../../core/tensor_desc.ts";

/** Compile-time parameters of a decode kernel. */
export interface DecodeParams {
  readonly headDim: number;
  readonly valueDim: number;
  readonly dtype: DType;
  /** Query rows of the one row tile: `qLen · pack` (at least 1). */
  readonly rows: number;
  /** Keys per listed tile (the plan's `tile.kv`): a power of two from 8 to `THREADS`. */
  readonly tileKv: number;
  /** Whether q, k and v are read four elements at a time (see `flashVecAligned`). */
  readonly vec: boolean;
  readonly mask?: Expr;
  readonly scoreMod?: Expr;
  readonly sinkLogits?: readonly number[];
  /** Keys read from a paged pool through block tables (binding 4), for a paged plan. */
  readonly paged?: boolean;
}

/** Invocations per workgroup. */
export const DECODE_THREADS = 256;
/** Invocations per row in the online softmax. */
export const LANES = 8;
/** Most partial scores kept per tile (f32 words), bounding the split of the head dimension. */
const MAX_PARTIALS = 2048;

/** How a decode kernel divides its work and workgroup memory. */
export interface Geometry {
  /** `vec4`s per K row and per V row. */
  readonly d4: number;
  readonly dv4: number;
  /** Invocations per key for scores, over rows (`gr`) × head-dimension slices (`gd`). */
  readonly gr: number;
  readonly gd: number;
  /** Rows per invocation for scores, rows padded to `rp · gr`, `vec4` steps per invocation. */
  readonly rp: number;
  readonly rpad: number;
  readonly dj: number;
  /** Key subsets of P·V and keys per invocation of one tile. */
  readonly ks: number;
  readonly nk: number;
  /** Keys per softmax invocation. */
  readonly kl: number;
  /** `vec4`s of Q (and, after the last tile, of the key subsets' O), and f32 partial scores. */
  readonly qv: number;
  readonly sc: number;
}

const pow2Floor = (n: number) => 2 ** Math.floor(Math.log2(Math.max(1, n)));

export function geometry(
  s: Pick<DecodeParams, "headDim" | "valueDim" | "rows" | "tileKv">,
): Geometry {
  const d4 = Math.ceil(s.headDim / 4), dv4 = Math.max(1, Math.ceil(s.valueDim / 4));
  const g = DECODE_THREADS / s.tileKv;
  // Split the head dimension as far as it goes (coalesced K reads, fewest loads) while the
  // partial scores (\`THREADS · rp\` words) stay within budget; the rest of a key's invocations
  // split the rows (padded with zero rows to a multiple of \`gr\`).
  const shape = (gd: number) => {
    const gr = g / gd, rp = Math.ceil(s.rows / gr);
    return { gd, gr, rp, rpad: rp * gr };
  };
  let split = shape(Math.min(g, pow2Floor(d4)));
  while (split.gd > 1 && split.gd * split.rpad * s.tileKv > MAX_PARTIALS) {
    split = shape(split.gd / 2);
  }
  const { gd, gr, rp, rpad } = split;
  const ks = Math.floor(DECODE_THREADS / dv4);
  return {
    d4,
    dv4,
    gr,
    gd,
    rp,
    rpad,
    dj: Math.ceil(d4 / gd),
    ks,
    nk: Math.ceil(s.tileKv / ks),
    kl: s.tileKv / LANES,
    qv: Math.max(1, rpad * d4, ks * dv4),
    sc: gd * rpad * s.tileKv,
  };
}

/** Workgroup bytes a decode kernel declares. */
export function decodeWorkgroupBytes(
  s: Pick<DecodeParams, "headDim" | "valueDim" | "rows" | "tileKv" | "paged">,
): number {
  const g = geometry(s);
  // Paged kernels keep each key's K and V row index of two tiles (see _decode_keys_wgsl.ts).
  const rowTable = s.paged ? 16 * s.tileKv : 0;
  return 16 * g.qv + 4 * g.sc + 8 * g.rpad * LANES + 4 * g.rpad + 8 * g.rpad + rowTable;
}

/**
 * Whether a plan runs on the decode kernel: a flash plan with head and value dims of at least
 * one whose query rows (`qLen · pack`, at
 * least one) fit one tile of at most 16 rows, whose key tiles are a power of two from 8 to
 * `DECODE_THREADS` keys, and whose workgroup memory fits the device's.
 *
 * @param plan The plan.
 * @param workgroupBytes The device's `maxComputeWorkgroupStorageSize` (WebGPU's default limit
 * when absent).
 * @returns True when `encodeAttention` runs the decode kernel for it.
 */
export function decodeFits(
  plan: Pick<KernelPlan, "family" | "sizes" | "pack" | "tile">,
  workgroupBytes = 16384,
): boolean {
  const rows = plan.sizes.qLen * plan.pack, kv = plan.tile.kv;
  // Head or value dim 0 leaves q/k or v unread, and the generated shader without their bindings:
  // the flash kernel serves those.
  const dims = plan.sizes.headDim >= 1 && plan.sizes.valueDim >= 1;
  return plan.family === "flash" && dims && rows >= 1 && rows <= plan.tile.q && plan.tile.q <= 16 &&
    kv >= LANES && kv <= DECODE_THREADS && (kv & (kv - 1)) === 0 &&
    decodeWorkgroupBytes({ ...plan.sizes, rows, tileKv: kv }) <= workgroupBytes;
}
