/**
 * Gathers and scatters of tensor rows on the GPU (`gatherRows`, `scatterRows`): the paged KV
 * cache's token writes, block copies, saves and loads. Each is one dispatch in its own submit,
 * ordered on the queue with the runs around it, and checked through error scopes.
 * @module
 */
import { numel, type TensorDesc } from "../../core/tensor_desc.ts";
import { fail } from "../../core/_check.ts";
import { mergedDims } from "../_strided.ts";
import type { BufferPool, UniformPool } from "./_buffer_pool.ts";
import { checkBinding, dispatch, grid, submitChecked, tensorBinding } from "./_dispatch.ts";
import type { PipelineCache } from "./_pipelines.ts";
import { ROWS_FIELDS, ROWS_THREADS, rowsWgsl } from "./kernels/rows_wgsl.ts";

/** What a row copy needs of the backend. */
export interface RowsContext {
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  readonly uniformPool: UniformPool;
  readonly pipelines: PipelineCache;
}

/** A strided source: its descriptor and buffer. */
export interface RowsSource {
  readonly desc: TensorDesc;
  readonly buffer: GPUBuffer;
}

/** The source's rows as `[R, d1, d2, d3]` with strides (merged dims, padded with ones). */
function rowGeometry(context: string, desc: TensorDesc): Record<string, number> {
  const inner = mergedDims({ ...desc, shape: desc.shape.slice(1), strides: desc.strides.slice(1) });
  if (inner.shape.length > 3) {
    fail("range", context, "source view", "rows of at most 3 unmergeable dimensions", desc.strides);
  }
  while (inner.shape.length < 3) inner.shape.unshift(1), inner.strides.unshift(0);
  const [d1, d2, d3] = inner.shape, [s1, s2, s3] = inner.strides;
  return { d1, d2, d3, s0: desc.strides[0] ?? 0, s1, s2, s3, offset: desc.offset };
}

/**
 * Gathers rows `rows` of `source` into a new contiguous buffer from the pool, or scatters the
 * rows of `source` over rows `rows` of `target`.
 *
 * @returns The buffer written: the new one of a gather, `target` of a scatter.
 */
export async function copyRows(
  ctx: RowsContext,
  mode: "gather" | "scatter",
  source: RowsSource,
  rows: Int32Array,
  target?: GPUBuffer,
): Promise<GPUBuffer> {
  const { device, pool } = ctx;
  const context = `${mode} rows`;
  const desc = source.desc;
  const width = desc.shape.length > 1 ? numel({ shape: desc.shape.slice(1) }) : 1;
  const geometry = rowGeometry(context, desc);
  const count = rows.length, elements = count * width;
  const bytes = desc.dtype === "f16" ? 2 * (elements + (elements & 1)) : 4 * elements;
  checkBinding(device, context, "rows", bytes);
  const pipeline = await ctx.pipelines.get(context, rowsWgsl(mode, desc.dtype));
  device.pushErrorScope("out-of-memory");
  device.pushErrorScope("validation");
  const out = target ?? pool.acquire(Math.max(4, bytes), `${context}: [${count}, ${width}]`);
  const index = pool.acquire(Math.max(4, 4 * count), `${context}: indices`);
  device.queue.writeBuffer(index, 0, rows);
  const values: Record<string, number> = { count, width, ...geometry };
  const params = ctx.uniformPool.upload(Uint32Array.from(ROWS_FIELDS, (f) => values[f]).buffer);
  const encoder = device.createCommandEncoder({ label: context });
  const pass = encoder.beginComputePass({ label: context });
  const items = desc.dtype === "f16" && mode === "gather" ? Math.ceil(elements / 2) : elements;
  if (items > 0) {
    const src = tensorBinding(device, context, "source", desc, source.buffer);
    dispatch(device, pass, pipeline, { 0: params, 1: src, 2: index, 3: out }, [
      ...grid(Math.ceil(items / ROWS_THREADS)),
    ]);
  }
  await submitChecked(device, pass, encoder, context, {
    pool,
    uniformPool: ctx.uniformPool,
    temporaries: [index],
    uniforms: [params],
    results: target ? [] : [out],
  });
  return out;
}
