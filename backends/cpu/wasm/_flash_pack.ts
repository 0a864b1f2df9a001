/**
 * Packs a flash run's inputs into WebAssembly memory in the layouts the micro-kernels read:
 * queries row-major, keys transposed tile by tile (`[tile][d][key]`, so `S = Q · Kᵀ` streams
 * contiguous key columns), values with rows padded to the gemm's column block. Each KV head is
 * packed once however many query heads read it. Linear in the inputs.
 * @module
 */
import type { KernelPlan } from "../../../core/lower.ts";
import type { TensorDesc } from "../../../core/tensor_desc.ts";
import type { RunInputs, Tensor } from "../../backend.ts";
import { gatherStrided, mergedDims } from "../../_strided.ts";
import { numel } from "../../../core/tensor_desc.ts";
import type { MicroKernels } from "./_micro_kernels.ts";
import { dataOf } from "../_storage.ts";
import type { FlashRegions } from "./_flash_regions.ts";

/** `finite` flags: not yet checked, every value finite, some value NaN or infinite. */
const FINITE_UNKNOWN = 0, FINITE_YES = 1, FINITE_NO = 2;

/** Head `(b, h)` of a rank-4 view as a `[rows, dim]` descriptor. */
function headDesc(t: Tensor, b: number, h: number): TensorDesc {
  const [, , rows, dim] = t.shape;
  const [sb, sh, sn, sd] = t.strides;
  return {
    dtype: t.dtype,
    shape: [rows, dim],
    strides: [sn, sd],
    offset: t.offset + b * sb + h * sh,
  };
}

/**
 * Gathers head `(b, h)` of `t` as f32 rows into the staging region and returns that view. f16
 * heads whose rows are contiguous are copied as bits and widened by the `widenF16`
 * micro-kernel; other views are gathered run by run.
 */
function stageHead(
  memory: Float32Array,
  kernels: MicroKernels,
  regions: FlashRegions,
  t: Tensor,
  b: number,
  h: number,
): Float32Array {
  const desc = headDesc(t, b, h);
  const count = numel(desc);
  const staged = memory.subarray(regions.staging / 4, regions.staging / 4 + count);
  const data = dataOf(t);
  const { shape, strides } = mergedDims(desc);
  if (
    data instanceof Float16Array && shape.length <= 1 && (shape.length === 0 || strides[0] === 1)
  ) {
    const bits = new Uint16Array(data.buffer, data.byteOffset + 2 * desc.offset, count);
    new Uint16Array(memory.buffer, regions.stagingBits, count).set(bits);
    kernels.widenF16(regions.stagingBits, regions.staging, count);
  } else {
    gatherStrided(data, desc, staged);
  }
  return staged;
}

/**
 * Writes every head of `io` into `memory` at the offsets of `regions`.
 *
 * @param memory A view of the whole WebAssembly memory.
 * @param kernels The run's micro-kernels (for f16 widening).
 */
export function packFlashInputs(
  memory: Float32Array,
  kernels: MicroKernels,
  plan: KernelPlan,
  regions: FlashRegions,
  io: RunInputs,
): void {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  const { qRows, tileKv, tileCols, kvTiles, valueCols } = regions;
  const finite = new Uint8Array(memory.buffer, regions.finite, batch * kvHeads * kvTiles);
  finite.fill(FINITE_UNKNOWN);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const at = regions.q / 4 + (b * heads + h) * qRows * headDim;
      memory.set(stageHead(memory, kernels, regions, io.q, b, h), at);
      memory.fill(0, at + qLen * headDim, at + qRows * headDim);
    }
    for (let h = 0; h < kvHeads; h++) {
      const head = b * kvHeads + h;
      const keys = stageHead(memory, kernels, regions, io.k, b, h);
      transposeTiles(keys, memory, regions.kt / 4 + head * kvTiles * headDim * tileCols, {
        kvLen,
        headDim,
        tileKv,
        tileCols,
      });
      const values = stageHead(memory, kernels, regions, io.v, b, h);
      const v0 = regions.v / 4 + head * kvLen * valueCols;
      if (valueCols === valueDim) {
        memory.set(values, v0);
      } else {
        for (let j = 0; j < kvLen; j++) {
          const row = v0 + j * valueCols;
          memory.set(values.subarray(j * valueDim, (j + 1) * valueDim), row);
          memory.fill(0, row + valueDim, row + valueCols);
        }
      }
    }
  }
}

/**
 * Whether every value of KV tile `col` (values at `v`, rows of `valueCols`) is finite, checked
 * once per run on first use: only partial tiles ask, so unmasked runs never scan.
 */
export function tileFinite(
  memory: Float32Array,
  flags: Uint8Array,
  col: number,
  v: number,
  rows: number,
  valueCols: number,
): boolean {
  if (flags[col] === FINITE_UNKNOWN) {
    let ok = true;
    for (let i = v, end = v + rows * valueCols; i < end && ok; i++) {
      ok = memory[i] - memory[i] === 0; // NaN and ±Infinity give NaN
    }
    flags[col] = ok ? FINITE_YES : FINITE_NO;
  }
  return flags[col] === FINITE_YES;
}

/** `[key][d]` rows into `[tile][d][key]` blocks of `tileCols` key columns, zero-padded. */
function transposeTiles(
  keys: Float32Array,
  memory: Float32Array,
  at: number,
  sizes: { kvLen: number; headDim: number; tileKv: number; tileCols: number },
): void {
  const { kvLen, headDim, tileKv, tileCols } = sizes;
  for (let j0 = 0, tile = at; j0 < kvLen; j0 += tileKv, tile += headDim * tileCols) {
    const count = Math.min(tileKv, kvLen - j0);
    for (let t = 0; t < count; t++) {
      const row = (j0 + t) * headDim;
      for (let d = 0; d < headDim; d++) memory[tile + d * tileCols + t] = keys[row + d];
    }
    for (let d = 0; d < headDim; d++) {
      memory.fill(0, tile + d * tileCols + count, tile + (d + 1) * tileCols);
    }
  }
}
