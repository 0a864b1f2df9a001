/**
 * The f16 pack the encoders end with: kernels compute and accumulate in f32, and a plan that
 * stores f16 converts its `out` in one last pass of the same command encoder.
 * @module
 */
import type { BufferPool } from "./_buffer_pool.ts";
import { dispatch, grid } from "./_dispatch.ts";

/**
 * A run's f32 `out` packed into f16 storage when the plan stores f16 (the f32 buffer then joins
 * the run's scratch); else `outF32` itself.
 */
export function encodePack(
  req: { readonly device: GPUDevice; readonly pool: BufferPool },
  pass: GPUComputePassEncoder,
  kernels: { readonly pack?: GPUComputePipeline },
  outF32: GPUBuffer,
  elements: number,
  run: { label: string; uniform: (data: ArrayBuffer) => GPUBuffer; temporaries: GPUBuffer[] },
): GPUBuffer {
  if (!kernels.pack) return outF32;
  const out = req.pool.acquire(
    Math.max(4, 2 * (elements + (elements & 1))),
    `out f16: ${run.label}`,
  );
  run.temporaries.push(outF32);
  const count = run.uniform(new Uint32Array([elements, 0, 0, 0]).buffer);
  const words = Math.ceil(elements / 2);
  if (words > 0) {
    dispatch(
      req.device,
      pass,
      kernels.pack,
      { 0: outF32, 1: out, 2: count },
      grid(Math.ceil(words / 256)),
    );
  }
  return out;
}
