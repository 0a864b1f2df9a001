/**
 * Encodes a WebGPU backward pass: the prep pass (`dO` rows and `D`), the key-tile pass (dK, dV)
 * and the query-tile pass (dQ), f16 packing, in one command encoder. Scratch is O(N·d): `dO` as
 * f32 rows, `(lse, D)` per row, f32 gradients, the tile lists, and the head parameters' per-thread
 * partials (one per thread of each query tile). Sink-logit and head-parameter gradients are summed
 * on the host in f64, in a fixed order, from those per-row and per-thread figures.
 * @module
 */
import type { KernelPlan } from "../../core/lower.ts";
import type { ScoreModGradient } from "../../core/score_mod_gradient.ts";
import { type TileLists, tileLists } from "../../core/tile_lists.ts";
import { tensorDesc } from "../../core/tensor_desc.ts";
import type { SoftmaxBackwardInputs } from "../backend.ts";
import type { BufferPool, UniformPool } from "./_buffer_pool.ts";
import type { KernelCompiler } from "./_compile.ts";
import { perPlan } from "./_pipelines.ts";
import {
  type Bindings,
  dispatch,
  grid,
  paramsData,
  submitChecked,
  tensorBinding,
} from "./_dispatch.ts";
import { readBack, type StagingPool } from "./_readback.ts";
import { LITERALS_BINDING } from "./kernels/_common_wgsl.ts";
import { packF16Wgsl } from "./kernels/materialized_wgsl.ts";
import { backwardModifiers, backwardThreads, backwardTileWgsl } from "./kernels/backward_wgsl.ts";
import { blockGeometry } from "./kernels/_backward_geometry.ts";
import { flashVecAligned } from "./kernels/flash_wgsl.ts";
import { backwardPrepWgsl, PREP_FIELDS, PREP_ROWS } from "./kernels/backward_prep_wgsl.ts";

/** What a backward pass needs: the backend's compiler and pools, the plan and checked inputs. */
export interface BackwardRequest extends KernelCompiler {
  readonly pool: BufferPool;
  readonly uniformPool: UniformPool;
  readonly staging: StagingPool;
  readonly plan: KernelPlan;
  readonly gradient?: ScoreModGradient;
  /** Whether the adapter is a software fallback (see `BackwardTileParams.software`). */
  readonly software: boolean;
  /** The inputs' views. */
  readonly io: SoftmaxBackwardInputs;
  /** The buffers behind them. */
  readonly buffers: Readonly<Record<keyof SoftmaxBackwardInputs, GPUBuffer>>;
}

/** The gradients' buffers (from the pool, owned by the caller) and the per-head figures. */
export interface BackwardBuffers {
  readonly dq: GPUBuffer;
  readonly dk: GPUBuffer;
  readonly dv: GPUBuffer;
  readonly dSinkLogits?: number[];
  readonly dHeadParams?: number[][];
}

const TILES = [64, 32, 16];

/**
 * The largest hardware tile whose register-block kernels the device fits (64 with 48 KiB of
 * workgroup memory).
 */
export function backwardTile(
  limits: GPUSupportedLimits,
  headDim: number,
  valueDim: number,
): number | undefined {
  return TILES.find((tile) =>
    (["kv", "q"] as const).every((mode) => {
      const g = blockGeometry(
        { mode, tile, headDim, valueDim },
        limits.maxComputeWorkgroupStorageSize,
      );
      // The `kv` pass has twice the `q` pass's invocations.
      return g !== undefined && g.threads <= limits.maxComputeInvocationsPerWorkgroup;
    })
  );
}

/** Tile lists in the `u32` form the tile passes read: [starts at, entries at, first per unit…,
 * starts…, (index << 1 | partial)…]. */
function listWords(
  first: ArrayLike<number>,
  starts: ArrayLike<number>,
  index: ArrayLike<number>,
  partial: ArrayLike<number>,
) {
  const at = 2 + first.length, entries = at + starts.length;
  const words = new Uint32Array(entries + index.length);
  words.set([at, entries]);
  words.set(first, 2);
  words.set(starts, at);
  for (let e = 0; e < index.length; e++) words[entries + e] = (index[e] << 1) | partial[e];
  return words;
}

/**
 * The column view of row lists: per unit and key tile, the query tiles that list it, in increasing
 * order. O(tiles listed + layouts · cols).
 */
function columnWords(lists: TileLists): Uint32Array {
  const { rows, cols, unitRow, rowStart, tileCol, partial } = lists;
  const layouts = rows ? (rowStart.length - 1) / rows : 0;
  const colStart = new Uint32Array(layouts * cols + 1);
  for (let l = 0; l < layouts; l++) {
    for (let e = rowStart[l * rows]; e < rowStart[(l + 1) * rows]; e++) {
      colStart[l * cols + tileCol[e] + 1]++;
    }
  }
  for (let c = 0; c < layouts * cols; c++) colStart[c + 1] += colStart[c];
  const fill = colStart.slice(0, -1);
  const rowOf = new Uint32Array(tileCol.length), part = new Uint8Array(tileCol.length);
  for (let l = 0; l < layouts; l++) {
    for (let r = 0; r < rows; r++) {
      for (let e = rowStart[l * rows + r]; e < rowStart[l * rows + r + 1]; e++) {
        const slot = fill[l * cols + tileCol[e]]++;
        rowOf[slot] = r, part[slot] = partial[e];
      }
    }
  }
  const unitCol = unitRow.map((first) => rows ? (first / rows) * cols : 0);
  return listWords(unitCol, colStart, rowOf, part);
}

interface BackwardKernels {
  readonly tile: number;
  readonly lists: TileLists;
  readonly rowWords: Uint32Array;
  readonly colWords: Uint32Array;
  readonly literals: { readonly words: Uint32Array; readonly count: number };
  readonly prep: GPUComputePipeline;
  readonly kv: GPUComputePipeline;
  readonly q: GPUComputePipeline;
  readonly pack?: GPUComputePipeline;
}

/**
 * A plan's backward pipelines and tile lists, built once per plan and backend (the pipelines
 * belong to the backend's device; the tile depends on its limits and adapter).
 */
const backwardKernels = perPlan(async (req: BackwardRequest, plan: KernelPlan) => {
  const { gradient, pipelines } = req;
  const { batch, heads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  const tile = req.software ? 8 : backwardTile(req.device.limits, headDim, valueDim);
  if (tile === undefined) {
    throw new RangeError(
      `Cannot run backward: head dims ${headDim}/${valueDim} exceed the device's workgroup memory (${req.device.limits.maxComputeWorkgroupStorageSize} bytes)`,
    );
  }
  const lists = tileLists(plan.mask, { batch, heads, qLen, kvLen, tileQ: tile, tileKv: tile });
  const shape = {
    tile,
    headDim,
    valueDim,
    dtype: plan.dtype,
    mask: plan.mask,
    scoreMod: plan.scoreMod,
    gradient,
    software: req.software,
    vec: flashVecAligned(plan),
    workgroupBytes: req.device.limits.maxComputeWorkgroupStorageSize,
  };
  const label = `backward ${plan.dtype} D${headDim}/${valueDim} tile ${tile}`;
  return {
    tile,
    lists,
    rowWords: listWords(lists.unitRow, lists.rowStart, lists.tileCol, lists.partial),
    colWords: columnWords(lists),
    literals: backwardModifiers(plan.mask, plan.scoreMod, gradient),
    prep: await pipelines.get(`backward prep ${plan.dtype}`, backwardPrepWgsl(plan.dtype)),
    kv: await pipelines.get(`${label}: dK dV`, backwardTileWgsl({ ...shape, mode: "kv" })),
    q: await pipelines.get(`${label}: dQ`, backwardTileWgsl({ ...shape, mode: "q" })),
    pack: plan.dtype === "f16" ? await pipelines.get("pack f16", packF16Wgsl()) : undefined,
  } satisfies BackwardKernels;
});

/** The prep pass's uniform block: row count and the views of out, dOut and lse. */
function prepData(plan: KernelPlan, io: SoftmaxBackwardInputs): ArrayBuffer {
  const { batch, heads, qLen, valueDim } = plan.sizes;
  const values: Record<string, number> = {
    rows: batch * heads * qLen,
    heads,
    q_len: qLen,
    value_dim: valueDim,
  };
  for (const [prefix, t] of [["o", io.out], ["g", io.dOut], ["l", io.lse]] as const) {
    values[`${prefix}_off`] = t.offset;
    ["sb", "sh", "sn", "sd"].forEach((s, i) => values[`${prefix}_${s}`] = t.strides[i] ?? 0);
  }
  return new Uint32Array(PREP_FIELDS.map((f) => values[f])).buffer;
}

/** Encodes, submits and checks a backward pass; reads back what the per-head gradients need. */
export async function encodeBackward(req: BackwardRequest): Promise<BackwardBuffers> {
  const { device, pool, plan, io, buffers } = req;
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = plan.sizes;
  const label =
    `backward B${batch} H${heads}/${kvHeads} Nq${qLen} Nk${kvLen} D${headDim}/${valueDim}`;
  const bind = (role: keyof SoftmaxBackwardInputs) =>
    tensorBinding(device, label, role, io[role], buffers[role]);
  const bound = {
    q: bind("q"),
    k: bind("k"),
    v: bind("v"),
    out: bind("out"),
    lse: bind("lse"),
    dOut: bind("dOut"),
  };
  const k = await backwardKernels(req, req.plan);
  const nParams = req.gradient?.dParams.length ?? 0;
  const rows = batch * heads * qLen;

  device.pushErrorScope("out-of-memory");
  device.pushErrorScope("validation");
  const temporaries: GPUBuffer[] = [], uniforms: GPUBuffer[] = [];
  const scratch = (bytes: number, what: string, keep = false) => {
    const buffer = pool.acquire(Math.max(16, bytes), `${what}: ${label}`);
    if (!keep) temporaries.push(buffer);
    return buffer;
  };
  const uniform = (data: ArrayBuffer) => {
    const buffer = req.uniformPool.upload(data);
    uniforms.push(buffer);
    return buffer;
  };
  const f16 = plan.dtype === "f16";
  const go = scratch(4 * rows * valueDim, "dO rows");
  const stats = scratch(8 * rows, "lse and D", true);
  const dq = scratch(4 * rows * headDim, "dq", !f16);
  const dk = scratch(4 * batch * kvHeads * kvLen * headDim, "dk", !f16);
  const dv = scratch(4 * batch * kvHeads * kvLen * valueDim, "dv", !f16);
  const partials = nParams
    ? scratch(
      4 * batch * heads * k.lists.rows * backwardThreads(k.tile, req.software) * nParams,
      "partials",
      true,
    )
    : undefined;
  const words = (w: Uint32Array, what: string) => {
    const buffer = scratch(4 * w.length, what);
    device.queue.writeBuffer(buffer, 0, w);
    return buffer;
  };
  const rowTiles = words(k.rowWords, "row tiles"), colTiles = words(k.colWords, "column tiles");
  const encoder = device.createCommandEncoder({ label });
  const pass = encoder.beginComputePass({ label });
  if (rows > 0) {
    const io4 = { 1: bound.out, 2: bound.dOut, 3: bound.lse, 4: go, 5: stats };
    dispatch(
      device,
      pass,
      k.prep,
      { 0: uniform(prepData(plan, io)), ...io4 },
      grid(Math.ceil(rows / PREP_ROWS)),
    );
  }
  const params = uniform(paramsData(plan, { rows: k.lists.rows, cols: k.lists.cols, headBase: 0 }));
  const lits: Bindings = k.literals.count
    ? { [LITERALS_BINDING]: uniform(k.literals.words.buffer as ArrayBuffer) }
    : {};
  const common = { 0: params, 1: bound.q, 2: bound.k, 3: bound.v, 5: go, 6: stats, ...lits };
  if (kvLen > 0 && k.lists.cols > 0) {
    dispatch(device, pass, k.kv, { ...common, 4: colTiles, 8: dk, 9: dv }, [
      k.lists.cols,
      batch * kvHeads,
    ]);
  }
  if (rows > 0 && k.lists.rows > 0) {
    const extra: Bindings = partials ? { 9: partials } : {};
    dispatch(device, pass, k.q, { ...common, 4: rowTiles, 8: dq, ...extra }, [
      k.lists.rows,
      batch * heads,
    ]);
  }
  const packed = (src: GPUBuffer, elements: number, what: string) => {
    const dst = scratch(2 * (elements + (elements & 1)), what, true);
    const words = Math.ceil(elements / 2);
    if (words > 0) {
      const count = uniform(new Uint32Array([elements, 0, 0, 0]).buffer);
      dispatch(device, pass, k.pack!, { 0: src, 1: dst, 2: count }, grid(Math.ceil(words / 256)));
    }
    return dst;
  };
  const result = f16
    ? {
      dq: packed(dq, rows * headDim, "dq f16"),
      dk: packed(dk, batch * kvHeads * kvLen * headDim, "dk f16"),
      dv: packed(dv, batch * kvHeads * kvLen * valueDim, "dv f16"),
    }
    : { dq, dk, dv };
  const results = [result.dq, result.dk, result.dv, stats, ...(partials ? [partials] : [])];
  await submitChecked(device, pass, encoder, label, {
    pool,
    uniformPool: req.uniformPool,
    temporaries,
    uniforms,
    results,
  });
  try {
    return { ...result, ...await headGradients(req, k, stats, partials) };
  } finally {
    pool.release(stats);
    if (partials) pool.release(partials);
  }
}

/**
 * `∂loss/∂sink_h = −Σ_i e^(sink_h − lse_i)·D_i` from the rows' `(lse, D)`, and the head
 * parameters' gradients from the per-thread partials: f64 sums in batch, tile and thread order.
 */
async function headGradients(
  req: BackwardRequest,
  k: BackwardKernels,
  stats: GPUBuffer,
  partials: GPUBuffer | undefined,
): Promise<{ dSinkLogits?: number[]; dHeadParams?: number[][] }> {
  const { plan } = req;
  const sinks = plan.sinkLogits;
  if (!sinks && !partials) return {};
  const { batch, heads, qLen } = plan.sizes;
  const nParams = req.gradient?.dParams.length ?? 0;
  const perHead = k.lists.rows * backwardThreads(k.tile, req.software) * nParams;
  const requests = [
    ...(sinks
      ? [{
        desc: tensorDesc([batch * heads * qLen * 2]),
        buffer: stats,
        target: new Float32Array(batch * heads * qLen * 2),
      }]
      : []),
    ...(partials
      ? [{
        desc: tensorDesc([batch * heads * perHead]),
        buffer: partials,
        target: new Float32Array(batch * heads * perHead),
      }]
      : []),
  ];
  await readBack(req.device, req.staging, requests);
  const out: { dSinkLogits?: number[]; dHeadParams?: number[][] } = {};
  if (sinks) {
    const rows = requests[0].target;
    out.dSinkLogits = sinks.map((sink, h) => {
      let sum = 0;
      for (let b = 0; b < batch; b++) {
        for (let i = 0; i < qLen; i++) {
          const at = 2 * ((b * heads + h) * qLen + i), lse = rows[at];
          if (lse !== -Infinity) sum -= Math.exp(sink - lse) * rows[at + 1];
        }
      }
      return sum;
    });
  }
  if (partials) {
    const figures = requests[requests.length - 1].target;
    out.dHeadParams = Array.from(
      { length: nParams },
      (_, n) =>
        Array.from({ length: heads }, (_, h) => {
          let sum = 0;
          for (let b = 0; b < batch; b++) {
            const base = (b * heads + h) * perHead;
            for (let x = n; x < perHead; x += nParams) sum += figures[base + x];
          }
          return sum;
        }),
    );
  }
  return out;
}
