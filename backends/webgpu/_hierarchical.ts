/**
 * Encodes a hierarchical run (see `hierarchical()`): the pool pass writes every KV head's block
 * summaries, the rows pass one query row per invocation (64 rows of one KV head per workgroup),
 * then f16 plans pack the f32 output;
 * one command encoder, one submit, errors raised with the run's label. The only temporaries are
 * the summaries (linear in `Nk`) and the per-head weights.
 * @module
 */
import { encodePack } from "./_pack.ts";
import { summaryCount } from "../../core/hierarchy.ts";
import type { KernelPlan } from "../../core/lower.ts";
import type { BufferPool, UniformPool } from "./_buffer_pool.ts";
import {
  type Binding,
  type Bindings,
  checkBinding,
  dispatch,
  grid,
  paramsData,
  submitChecked,
  tensorBinding,
} from "./_dispatch.ts";
import { perPlan, type PipelineCache } from "./_pipelines.ts";
import {
  type HierarchicalParams,
  HIERARCHY_BINDINGS,
  HIERARCHY_FIELDS,
  HIERARCHY_WORKGROUP,
  poolWgsl,
  rowsWgsl,
} from "./kernels/hierarchical_wgsl.ts";
import { packF16Wgsl } from "./kernels/materialized_wgsl.ts";

/** The pipelines of a hierarchical plan. */
export interface HierarchicalKernels {
  readonly pool: GPUComputePipeline;
  readonly rows: GPUComputePipeline;
  /** Packs the f32 output to f16 storage. */
  readonly pack?: GPUComputePipeline;
}

/** What compiling needs: the backend's device and pipeline cache. */
export interface HierarchicalCompiler {
  readonly device: GPUDevice;
  readonly pipelines: PipelineCache;
}

/** What a run needs: the compiler, the pools, the plan and the input buffers. */
export interface HierarchicalRequest extends HierarchicalCompiler {
  readonly pool: BufferPool;
  readonly uniformPool: UniformPool;
  readonly plan: KernelPlan;
  readonly inputs: {
    readonly q: GPUBuffer;
    readonly k: GPUBuffer;
    readonly v: GPUBuffer;
    /** The gates' buffer, for plans made with gates. */
    readonly gates?: GPUBuffer;
  };
}

/** The run's label: sizes and branch shape, for pipeline and error messages. */
function runLabel(plan: KernelPlan): string {
  const s = plan.sizes;
  const { window, block, stride, topK, gates } = plan.hierarchy!;
  return `hierarchical ${plan.dtype} B${s.batch} H${s.heads}/${s.kvHeads} Nq${s.qLen} Nk${s.kvLen} D${s.headDim}/${s.valueDim} window${window} block${block}/${stride} top${topK}${
    gates ? " gated" : ""
  }`;
}

async function compile(compiler: HierarchicalCompiler, plan: KernelPlan) {
  const { pipelines } = compiler;
  const label = runLabel(plan);
  const params: HierarchicalParams = {
    headDim: plan.sizes.headDim,
    valueDim: plan.sizes.valueDim,
    dtype: plan.dtype,
    topK: plan.hierarchy!.topK,
    gates: plan.hierarchy!.gates !== undefined,
    workgroupBytes: compiler.device.limits.maxComputeWorkgroupStorageSize,
  };
  const [pool, rows, pack] = await Promise.all([
    pipelines.get(`pool: ${label}`, poolWgsl(params)),
    pipelines.get(`rows: ${label}`, rowsWgsl(params)),
    plan.dtype === "f16" ? pipelines.get("pack f16", packF16Wgsl()) : undefined,
  ]);
  return { pool, rows, ...(pack ? { pack } : {}) };
}

/**
 * A hierarchical plan's pipelines, generated and looked up once per plan object and backend.
 * @throws {Error} If a shader fails to compile, naming it.
 */
export const hierarchicalKernels: (
  compiler: HierarchicalCompiler,
  plan: KernelPlan,
) => Promise<HierarchicalKernels> = perPlan(compile);

/** The hierarchy's uniform block for a dispatch of `total` invocations or workgroups. */
function hierarchyData(plan: KernelPlan, count: number, total: number): ArrayBuffer {
  const { window, block, stride, gates } = plan.hierarchy!;
  const values: Record<string, number> = { window, block, stride, count, total };
  if (gates) {
    values.g_off = gates.offset;
    ["g_sb", "g_sh", "g_sn", "g_sd"].forEach((name, i) => values[name] = gates.strides[i]);
  }
  return new Uint32Array(HIERARCHY_FIELDS.map((field) => values[field] ?? 0)).buffer;
}

/**
 * Encodes, submits and checks one hierarchical run.
 *
 * @param req The compiler, pools, plan and inputs.
 * @returns The output buffer `[B, Hq, Nq, Dv]` in the plan's dtype, from the pool.
 * @throws {RangeError} If a buffer exceeds the device's binding size, naming it.
 * @throws {Error} For a shader, validation or out-of-memory error, with the run's label.
 */
export async function encodeHierarchical(req: HierarchicalRequest): Promise<GPUBuffer> {
  const { device, pool, plan, inputs } = req;
  const hierarchy = plan.hierarchy!;
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  const label = runLabel(plan);
  const bound: Record<number, Binding> = {
    1: tensorBinding(device, label, "q", plan.q, inputs.q),
    2: tensorBinding(device, label, "k", plan.k, inputs.k),
    3: tensorBinding(device, label, "v", plan.v, inputs.v),
  };
  const gates = hierarchy.gates && inputs.gates &&
    tensorBinding(device, label, "gates", hierarchy.gates, inputs.gates);
  const count = summaryCount(kvLen, hierarchy.block, hierarchy.stride);
  const rows = batch * heads * qLen;
  const elements = rows * valueDim;
  const pooledBytes = (dim: number) => Math.max(16, 4 * batch * kvHeads * count * dim);
  checkBinding(device, label, "out", 4 * elements);
  checkBinding(device, label, "pooled keys", pooledBytes(headDim));
  checkBinding(device, label, "pooled values", pooledBytes(valueDim));
  // Compile after the size checks and before allocating: neither a size that cannot run nor a
  // shader error costs a compilation or touches the pool.
  const kernels = await hierarchicalKernels(req, plan);

  device.pushErrorScope("out-of-memory");
  device.pushErrorScope("validation");
  const uniforms: GPUBuffer[] = [];
  const uniform = (data: ArrayBuffer) => {
    const buffer = req.uniformPool.upload(data);
    uniforms.push(buffer);
    return buffer;
  };
  const outF32 = pool.acquire(Math.max(16, 4 * elements), `out: ${label}`);
  const pooledKeys = pool.acquire(pooledBytes(headDim), `pooled keys: ${label}`);
  const pooledValues = pool.acquire(pooledBytes(valueDim), `pooled values: ${label}`);
  const temporaries = [pooledKeys, pooledValues];
  let weights = gates;
  if (!weights) {
    const w = hierarchy.weights!;
    const data = Float32Array.from(
      { length: 3 * heads },
      (_, n) => [w.compressed, w.selected, w.window][n % 3][Math.floor(n / 3)],
    );
    const buffer = pool.acquire(Math.max(16, data.byteLength), `weights: ${label}`);
    device.queue.writeBuffer(buffer, 0, data);
    temporaries.push(buffer);
    weights = buffer;
  }
  const { pooledKeys: pk, pooledValues: pv, hierarchy: hb, out: ob } = HIERARCHY_BINDINGS;
  const params = uniform(paramsData(plan, { rows, cols: count, headBase: 0 }));
  const shared: Bindings = { 0: params, [pk]: pooledKeys, [pv]: pooledValues };
  const encoder = device.createCommandEncoder({ label });
  const pass = encoder.beginComputePass({ label });
  const pooled = batch * kvHeads * count * Math.max(headDim, valueDim);
  if (pooled > 0) {
    const hierarchyUniform = uniform(hierarchyData(plan, count, pooled));
    dispatch(
      device,
      pass,
      kernels.pool,
      { ...shared, 2: bound[2], 3: bound[3], [hb]: hierarchyUniform },
      grid(Math.ceil(pooled / HIERARCHY_WORKGROUP)),
    );
  }
  if (rows > 0) {
    // Each KV head's rows (its query heads' rows together) fill whole workgroups of their own.
    const tiles = batch * kvHeads * Math.ceil((rows / (batch * kvHeads)) / HIERARCHY_WORKGROUP);
    const rowsBindings: Bindings = {
      ...shared,
      ...bound,
      [hb]: uniform(hierarchyData(plan, count, tiles)),
      [ob]: outF32,
      [HIERARCHY_BINDINGS.weights]: weights,
    };
    dispatch(device, pass, kernels.rows, rowsBindings, grid(tiles));
  }
  const out = encodePack(req, pass, kernels, outF32, elements, { label, uniform, temporaries });
  const { uniformPool } = req;
  await submitChecked(device, pass, encoder, label, {
    pool,
    uniformPool,
    temporaries,
    uniforms,
    results: [out],
  });
  return out;
}
