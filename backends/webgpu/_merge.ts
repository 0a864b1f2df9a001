/**
 * `mergeStates` on the GPU: the pair merge folded over two or more states in one command
 * encoder (each step into pooled f32 scratch), the result packed to f16 when the states' `out`
 * is f16.
 * @module
 */
import type { DType } from "../../core/tensor_desc.ts";
import { dispatch, grid, submitChecked } from "./_dispatch.ts";
import { encodePack } from "./_pack.ts";
import type { RowsContext } from "./_rows.ts";
import { MERGE_PAIR_THREADS, mergePairWgsl } from "./kernels/merge_pair_wgsl.ts";
import { packF16Wgsl } from "./kernels/materialized_wgsl.ts";

/** A state's buffers: `out` (f32 or packed f16) and `lse` (f32), both contiguous. */
export interface StateBuffers {
  readonly out: GPUBuffer;
  readonly lse: GPUBuffer;
}

/**
 * Merges two or more states of `rows` rows and `width` value columns whose `out` is stored as
 * `dtype`.
 *
 * @returns New pool buffers: `out` in `dtype`, `lse` f32.
 */
export async function mergeStateBuffers(
  ctx: RowsContext,
  states: readonly StateBuffers[],
  rows: number,
  width: number,
  dtype: DType,
): Promise<StateBuffers> {
  const { device, pool, uniformPool } = ctx;
  const label = `merge ${states.length} states: ${rows} rows x ${width}`;
  const elements = rows * width, items = rows * Math.max(1, width);
  // The first step reads two states as stored; later steps read the previous step's f32 out.
  const first = ctx.pipelines.get(`merge pair ${dtype}`, mergePairWgsl(dtype, dtype));
  const later = ctx.pipelines.get(`merge pair f32 ${dtype}`, mergePairWgsl("f32", dtype));
  const pack = dtype === "f16" ? ctx.pipelines.get("pack f16", packF16Wgsl()) : undefined;
  const [firstPipeline, laterPipeline, packPipeline] = await Promise.all([first, later, pack]);
  device.pushErrorScope("out-of-memory");
  device.pushErrorScope("validation");
  const temporaries: GPUBuffer[] = [], uniforms: GPUBuffer[] = [];
  const uniform = (data: ArrayBuffer) => {
    const buffer = uniformPool.upload(data);
    uniforms.push(buffer);
    return buffer;
  };
  const encoder = device.createCommandEncoder({ label });
  const pass = encoder.beginComputePass({ label });
  const sizes = uniform(new Uint32Array([rows, width, 0, 0]).buffer);
  let current = states[0];
  for (let s = 1; s < states.length; s++) {
    const next = {
      out: pool.acquire(Math.max(4, 4 * elements), `out: ${label}`),
      lse: pool.acquire(Math.max(4, 4 * rows), `lse: ${label}`),
    };
    if (items > 0) {
      dispatch(device, pass, s === 1 ? firstPipeline : laterPipeline, {
        0: sizes,
        1: current.out,
        2: current.lse,
        3: states[s].out,
        4: states[s].lse,
        5: next.out,
        6: next.lse,
      }, grid(Math.ceil(items / MERGE_PAIR_THREADS)));
    }
    if (s > 1) temporaries.push(current.out, current.lse);
    current = next;
  }
  const out = encodePack(ctx, pass, { pack: packPipeline }, current.out, elements, {
    label,
    uniform,
    temporaries,
  });
  await submitChecked(device, pass, encoder, label, {
    pool,
    uniformPool,
    temporaries,
    uniforms,
    results: [out, current.lse],
  });
  return { out, lse: current.lse };
}
