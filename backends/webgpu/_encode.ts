/**
 * Encodes one attention run: every dispatch of the plan's kernel family in one command encoder,
 * one submit, errors raised with the kernel's label and shape.
 * @module
 */
import type { TileLists } from "../../core/tile_lists.ts";
import type { KernelPlan } from "../../core/lower.ts";
import type { BufferPool, UniformPool } from "./_buffer_pool.ts";
import { compiledKernels, type KernelCompiler, shapeLabel } from "./_compile.ts";
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
import { literalsBinding, planLiterals } from "./_literals.ts";
import { encodePack } from "./_pack.ts";
import { checkSplitStates, encodeMerge, splitStates } from "./_split_kv.ts";

/** What a run needs. */
export interface EncodeRequest extends KernelCompiler {
  readonly pool: BufferPool;
  readonly uniformPool: UniformPool;
  readonly plan: KernelPlan;
  readonly layout: TileLists;
  readonly inputs: { readonly q: GPUBuffer; readonly k: GPUBuffer; readonly v: GPUBuffer };
}

/** Buffers a run produces (owned by the caller, from the pool). */
export interface EncodeResult {
  readonly out: GPUBuffer;
  readonly lse?: GPUBuffer;
  readonly probs?: GPUBuffer;
}

const tileWordsOf = new WeakMap<TileLists, Uint32Array>();

/**
 * The layout as the `u32`s the flash kernel reads: where the row offsets and the entries start,
 * each unit's first row, the row offsets, then one `col << 1 | partial` per listed tile.
 * Converted once per layout.
 */
function tileWords(layout: TileLists): Uint32Array {
  let words = tileWordsOf.get(layout);
  if (!words) {
    const { unitRow, rowStart, tileCol, partial } = layout;
    const starts = 2 + unitRow.length, entries = starts + rowStart.length;
    words = new Uint32Array(entries + tileCol.length);
    words.set([starts, entries]);
    words.set(unitRow, 2);
    words.set(rowStart, starts);
    for (let e = 0; e < tileCol.length; e++) words[entries + e] = (tileCol[e] << 1) | partial[e];
    tileWordsOf.set(layout, words);
  }
  return words;
}

/** Encodes, submits and checks one run. */
export async function encodeAttention(req: EncodeRequest): Promise<EncodeResult> {
  const { device, pool, plan, inputs } = req;
  const { batch, heads, qLen, kvLen, valueDim } = plan.sizes;
  const label = shapeLabel(plan);
  const bindingLimit = device.limits.maxStorageBufferBindingSize;
  const bound = {} as Record<"q" | "k" | "v", Binding>;
  for (const role of ["q", "k", "v"] as const) {
    bound[role] = tensorBinding(device, label, role, plan[role], inputs[role]);
  }
  const outBytes = 4 * batch * heads * qLen * valueDim;
  checkBinding(device, label, "out", outBytes);
  const scoreBytesPerHead = 4 * qLen * kvLen;
  const headsPerPass = plan.family === "flash"
    ? 65535
    : plan.outputs.probs
    ? batch * heads
    : Math.max(
      1,
      Math.min(batch * heads, Math.floor(bindingLimit / 2 / Math.max(4, scoreBytesPerHead))),
    );
  if (
    plan.family === "materialized" && headsPerPass * scoreBytesPerHead > bindingLimit
  ) {
    throw new RangeError(
      `Cannot run ${label}: scores need ${
        headsPerPass * scoreBytesPerHead
      } bytes, over the device's maxStorageBufferBindingSize ${bindingLimit}; use the flash kernel`,
    );
  }
  checkSplitStates(device, plan, label);
  // Compile after the size checks and before allocating, so neither a size that cannot run nor
  // a shader error costs a compilation or touches the pool.
  const kernels = await compiledKernels(req, plan);

  device.pushErrorScope("out-of-memory");
  device.pushErrorScope("validation");
  const temporaries: GPUBuffer[] = [];
  const uniforms: GPUBuffer[] = [];
  const uniform = (data: ArrayBuffer) => {
    const buffer = req.uniformPool.upload(data);
    uniforms.push(buffer);
    return buffer;
  };
  const outF32 = pool.acquire(outBytes, `out: ${label}`);
  const lse = pool.acquire(Math.max(4, 4 * batch * heads * qLen), `lse: ${label}`);
  if (!plan.outputs.lse) temporaries.push(lse);
  let probs: GPUBuffer | undefined;
  const encoder = device.createCommandEncoder({ label });
  const pass = encoder.beginComputePass({ label });
  const lits = literalsBinding(plan, uniform);
  const { scoreLiterals } = planLiterals(plan);
  const qkv: Bindings = { 1: bound.q, 2: bound.k, 3: bound.v, ...lits };
  const totalHeads = batch * heads;
  const flashUnits = totalHeads / plan.pack;

  if (kernels.flash) {
    const words = tileWords(req.layout);
    const tiles = pool.acquire(4 * words.length, `tiles: ${label}`);
    device.queue.writeBuffer(tiles, 0, words);
    temporaries.push(tiles);
    const { partOut, partLse } = splitStates(pool, plan, label, { outF32, lse }, temporaries);
    let params: GPUBuffer | undefined;
    for (let base = 0; base < flashUnits; base += headsPerPass) {
      const count = Math.min(headsPerPass, flashUnits - base);
      params = uniform(
        paramsData(plan, { rows: req.layout.rows, cols: req.layout.cols, headBase: base }),
      );
      if (req.layout.rows > 0) {
        dispatch(
          device,
          pass,
          kernels.flash,
          { 0: params, ...qkv, 4: tiles, 5: partOut, 6: partLse },
          [req.layout.rows, count, plan.splits],
        );
      }
    }
    if (params && totalHeads * qLen > 0) {
      encodeMerge(device, pass, kernels, plan, { params, partOut, partLse, outF32, lse, lits });
    }
  } else if (kernels.scores && kernels.softmax && kernels.output) {
    const scores = pool.acquire(Math.max(4, headsPerPass * scoreBytesPerHead), `scores: ${label}`);
    if (plan.outputs.probs) probs = scores;
    else temporaries.push(scores);
    for (let base = 0; base < totalHeads; base += headsPerPass) {
      const count = Math.min(headsPerPass, totalHeads - base);
      const params = uniform(paramsData(plan, { rows: count * qLen, cols: kvLen, headBase: base }));
      const tiles = (n: number) => Math.ceil(n / 16);
      if (qLen * kvLen > 0) {
        dispatch(device, pass, kernels.scores, {
          0: params,
          1: bound.q,
          2: bound.k,
          ...(scoreLiterals ? lits : {}),
          4: scores,
        }, [tiles(kvLen), tiles(qLen), count]);
      }
      if (qLen > 0) {
        dispatch(
          device,
          pass,
          kernels.softmax,
          { 0: params, 4: scores, 5: lse, ...(plan.sinkLogits ? lits : {}) },
          grid(count * qLen),
        );
        if (valueDim > 0) {
          dispatch(device, pass, kernels.output, { 0: params, 3: bound.v, 4: scores, 5: outF32 }, [
            tiles(valueDim),
            tiles(qLen),
            count,
          ]);
        }
      }
    }
  }

  const out = encodePack(req, pass, kernels, outF32, batch * heads * qLen * valueDim, {
    label,
    uniform,
    temporaries,
  });
  await submitChecked(device, pass, encoder, label, {
    pool,
    uniformPool: req.uniformPool,
    temporaries,
    uniforms,
    results: [out, ...(plan.outputs.lse ? [lse] : []), ...(probs ? [probs] : [])],
  });
  return { out, ...(plan.outputs.lse ? { lse } : {}), ...(probs ? { probs } : {}) };
}
