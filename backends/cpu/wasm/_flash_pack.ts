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
import { gatherStrided } from "../../_strided.ts";
import { dataOf } from "../_storage.ts";
import type { FlashRegions } from "./_flash_regions.ts";

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
 * Writes every head of `io` into `memory` at the offsets of `regions`.
 *
 * @param memory A view of the whole WebAssembly memory.
 */
export function packFlashInputs(
  memory: Float32Array,
  plan: KernelPlan,
  regions: FlashRegions,
  io: RunInputs,
): void {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  const { qRows, tileKv, tileCols, kvTiles, valueCols } = regions;
  const finite = new Uint8Array(memory.buffer, regions.finite, batch * kvHeads * kvTiles);
  const keys = new Float32Array(kvLen * headDim);
  const values = valueCols === valueDim ? undefined : new Float32Array(kvLen * valueDim);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const at = regions.q / 4 + (b * heads + h) * qRows * headDim;
      gatherStrided(dataOf(io.q), headDesc(io.q, b, h), memory.subarray(at, at + qLen * headDim));
      memory.fill(0, at + qLen * headDim, at + qRows * headDim);
    }
    for (let h = 0; h < kvHeads; h++) {
      const head = b * kvHeads + h;
      gatherStrided(dataOf(io.k), headDesc(io.k, b, h), keys);
      transposeTiles(keys, memory, regions.kt / 4 + head * kvTiles * headDim * tileCols, {
        kvLen,
        headDim,
        tileKv,
        tileCols,
      });
      const v0 = regions.v / 4 + head * kvLen * valueCols;
      if (values) {
        gatherStrided(dataOf(io.v), headDesc(io.v, b, h), values);
        for (let j = 0; j < kvLen; j++) {
          const row = v0 + j * valueCols;
          memory.set(values.subarray(j * valueDim, (j + 1) * valueDim), row);
          memory.fill(0, row + valueDim, row + valueCols);
        }
      } else {
        gatherStrided(
          dataOf(io.v),
          headDesc(io.v, b, h),
          memory.subarray(v0, v0 + kvLen * valueCols),
        );
      }
      for (let col = 0; col < kvTiles; col++) {
        const from = v0 + col * tileKv * valueCols;
        const to = v0 + Math.min(kvLen, (col + 1) * tileKv) * valueCols;
        finite[head * kvTiles + col] = allFinite(memory, from, to) ? 1 : 0;
      }
    }
  }
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

function allFinite(memory: Float32Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    if (memory[i] - memory[i] !== 0) return false; // NaN and ±Infinity give NaN
  }
  return true;
}
