/**
 * Encodes a paged run (`page()`): the decode kernel in paged mode over a ragged batch in one
 * dispatch (row tiles × units × key splits), reading K and V through the block tables, then the
 * split states' merge and the f16 pack where the plan needs them.
 * @module
 */
import type { KernelPlan } from "../../core/lower.ts";
import type { CheckedPages } from "../_check_pages.ts";
import type { BufferPool, UniformPool } from "./_buffer_pool.ts";
import { compiledKernels, type KernelCompiler } from "./_compile.ts";
import { checkBinding, dispatch, paramsData, submitChecked, tensorBinding } from "./_dispatch.ts";
import { literalsBinding } from "./_literals.ts";
import { encodePack } from "./_pack.ts";
import { pagedRows } from "./_paged_source.ts";
import { checkSplitStates, encodeMerge, splitStates } from "./_split_kv.ts";

/** Units (sequence × packed head group) one dispatch covers, the grid's y limit. */
const UNITS_PER_PASS = 65535;

function label(plan: KernelPlan): string {
  const s = plan.sizes, g = plan.paging!;
  return `paged ${plan.dtype} B${s.batch} H${s.heads}/${s.kvHeads} Nq${s.qLen} blocks ${g.maxBlocks}x${g.blockSize} D${s.headDim}/${s.valueDim}`;
}

/**
 * The block tables and lengths as the kernel reads them: `[blockSize, maxBlocks, queryLengthsAt,
 * lengthsAt, tablesAt, anyReleased]`, then the three arrays (released blocks, -1, become `0xffffffff`).
 */
function pageWords(plan: KernelPlan, pages: CheckedPages): Uint32Array {
  const batch = plan.sizes.batch, { blockSize, maxBlocks } = plan.paging!;
  // Whether a sequence's keys fall in a released block: then every tile takes the checked path.
  const released = pages.lengths.some((length, s) => {
    const row = pages.tables.subarray(s * maxBlocks, s * maxBlocks + Math.ceil(length / blockSize));
    return row.includes(-1);
  });
  const header = 6, words = new Uint32Array(header + 2 * batch + pages.tables.length);
  words.set([blockSize, maxBlocks, header, header + batch, header + 2 * batch, released ? 1 : 0]);
  words.set(pages.queryLengths, header);
  words.set(pages.lengths, header + batch);
  words.set(
    new Uint32Array(pages.tables.buffer, pages.tables.byteOffset, pages.tables.length),
    header + 2 * batch,
  );
  return words;
}

/** What a paged run needs. */
export interface PagedRequest extends KernelCompiler {
  readonly pool: BufferPool;
  readonly uniformPool: UniformPool;
  readonly plan: KernelPlan;
  readonly pages: CheckedPages;
  readonly inputs: { readonly q: GPUBuffer; readonly k: GPUBuffer; readonly v: GPUBuffer };
}

/** Encodes, submits and checks one paged run; resolves to `out` (and `lse` when planned). */
export async function encodePaged(
  req: PagedRequest,
): Promise<{ out: GPUBuffer; lse?: GPUBuffer }> {
  const { device, pool, plan, inputs } = req;
  const { batch, heads, qLen, valueDim } = plan.sizes;
  const name = label(plan);
  const bound = {
    1: tensorBinding(device, name, "q", plan.q, inputs.q),
    2: tensorBinding(device, name, "k pool", plan.k, inputs.k),
    3: tensorBinding(device, name, "v pool", plan.v, inputs.v),
  };
  const rowCount = batch * heads * qLen, splits = plan.splits;
  const outBytes = 4 * rowCount * valueDim;
  checkBinding(device, name, "out", outBytes);
  checkSplitStates(device, plan, name);
  const kernels = await compiledKernels(req, plan);
  const rows = pagedRows(plan, device);

  device.pushErrorScope("out-of-memory");
  device.pushErrorScope("validation");
  const temporaries: GPUBuffer[] = [], uniforms: GPUBuffer[] = [];
  const uniform = (data: ArrayBuffer) => {
    const buffer = req.uniformPool.upload(data);
    uniforms.push(buffer);
    return buffer;
  };
  const outF32 = pool.acquire(Math.max(4, outBytes), `out: ${name}`);
  const lse = pool.acquire(Math.max(4, 4 * rowCount), `lse: ${name}`);
  if (!plan.outputs.lse) temporaries.push(lse);
  const words = pageWords(plan, req.pages);
  const tables = pool.acquire(4 * words.length, `block tables: ${name}`);
  device.queue.writeBuffer(tables, 0, words);
  temporaries.push(tables);
  const { partOut, partLse } = splitStates(pool, plan, name, { outF32, lse }, temporaries);
  const encoder = device.createCommandEncoder({ label: name });
  const pass = encoder.beginComputePass({ label: name });
  const lits = literalsBinding(plan, uniform);
  const units = (batch * heads) / plan.pack, rowTiles = Math.ceil((qLen * plan.pack) / rows);
  let params: GPUBuffer | undefined;
  for (let base = 0; base < units && rowTiles > 0; base += UNITS_PER_PASS) {
    params = uniform(paramsData(plan, { rows: rowTiles, cols: 0, headBase: base }));
    dispatch(
      device,
      pass,
      kernels.flash!,
      { 0: params, ...bound, ...lits, 4: tables, 5: partOut, 6: partLse },
      [rowTiles, Math.min(UNITS_PER_PASS, units - base), splits],
    );
  }
  if (params) {
    encodeMerge(device, pass, kernels, plan, { params, partOut, partLse, outF32, lse, lits });
  }
  const out = encodePack(req, pass, kernels, outF32, rowCount * valueDim, {
    label: name,
    uniform,
    temporaries,
  });
  await submitChecked(device, pass, encoder, name, {
    pool,
    uniformPool: req.uniformPool,
    temporaries,
    uniforms,
    results: [out, ...(plan.outputs.lse ? [lse] : [])],
  });
  return { out, ...(plan.outputs.lse ? { lse } : {}) };
}
