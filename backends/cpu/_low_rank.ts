/**
 * Low-rank (Linformer) runs on the CPU: keys and values projected along the sequence to the
 * plan's `k` rows, which the attention kernels then read as any keys and values.
 * @module
 */
import type { KernelPlan } from "../../core/lower.ts";
import type { RunInputs, Tensor } from "../backend.ts";
import { gatherStrided } from "../_strided.ts";
import { cpuTensor, dataOf, gatherHead, hostArray } from "./_storage.ts";

/** The `[rows, keys]` matrix of a projection that KV head `h` uses, row-major. */
function projectionOf(p: Tensor, h: number): Float32Array {
  const rank = p.shape.length;
  const [rows, keys] = p.shape.slice(rank - 2);
  const matrix = {
    dtype: p.dtype,
    shape: [rows, keys],
    strides: p.strides.slice(rank - 2),
    offset: p.offset + (rank === 3 ? h * p.strides[0] : 0),
  };
  return gatherStrided(dataOf(p), matrix, new Float32Array(rows * keys));
}

/**
 * `P·X` for every batch and KV head of `x` (`[B, Hkv, Nk, dim]`, any strides): a contiguous
 * `[B, Hkv, k, dim]` tensor in the plan's dtype. Sums run in f64 over the f32 products, each row
 * rounded once to the storage dtype; no key is skipped, so non-finite keys propagate as IEEE says.
 */
function project(plan: KernelPlan, x: Tensor, p: Tensor, dim: number, owner: object): Tensor {
  const { batch, kvHeads, kvLen: rows } = plan.sizes;
  const keys = x.shape[2];
  const out = hostArray(plan.dtype, batch * kvHeads * rows * dim);
  const acc = new Float64Array(dim);
  for (let h = 0; h < kvHeads; h++) {
    const m = projectionOf(p, h);
    for (let b = 0; b < batch; b++) {
      const head = gatherHead(x, b, h);
      for (let r = 0; r < rows; r++) {
        acc.fill(0);
        for (let j = 0; j < keys; j++) {
          const w = m[r * keys + j], base = j * dim;
          for (let d = 0; d < dim; d++) acc[d] += w * head[base + d];
        }
        out.set(acc, ((b * kvHeads + h) * rows + r) * dim);
      }
    }
  }
  return cpuTensor(out, [batch, kvHeads, rows, dim], plan.dtype, owner);
}

/**
 * A low-rank plan's inputs as its attention kernel reads them: q as given, k and v replaced by
 * their projections `E·K` and `F·V` (new tensors of the backend instance `owner`).
 *
 * @param plan A low-rank plan, already checked against `io`.
 * @param io The run's inputs, `e` and `f` included.
 * @param owner The backend instance's token.
 * @returns The inputs with projected keys and values.
 */
export function projectLowRank(plan: KernelPlan, io: RunInputs, owner: object): RunInputs {
  const { headDim, valueDim } = plan.sizes;
  return {
    q: io.q,
    k: project(plan, io.k, io.e!, headDim, owner),
    v: project(plan, io.v, io.f!, valueDim, owner),
  };
}
