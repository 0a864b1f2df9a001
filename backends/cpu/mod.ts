/**
 * The CPU backend: pure TypeScript, runs anywhere (including edge runtimes without WebGPU), and
 * is the reference every other backend is tested against.
 *
 * ```ts
 * import { createCpuBackend } from "@attend/attend/cpu";
 * import { attention, causal, mask } from "@attend/attend/core";
 *
 * const cpu = createCpuBackend();
 * const x = cpu.tensor(new Float32Array(2 * 16 * 8).fill(0.1), [1, 2, 16, 8]);
 * const plan = cpu.plan(mask(causal())(attention(x, x, x)));
 * const { out } = await cpu.run(plan, { q: x, k: x, v: x });
 * console.log((await cpu.read(out)).length); // 256
 * ```
 * @module
 */
import { assertPlan, type BackendCaps, type KernelPlan, lower } from "../../core/lower.ts";
import type { AttentionSpec } from "../../core/spec.ts";
import { type DType, numel, tensorDesc } from "../../core/tensor_desc.ts";
import type {
  AttentionState,
  Backend,
  BackwardInputs,
  Gradients,
  RunInputs,
  RunOutputs,
  SoftmaxBackwardInputs,
  Tensor,
} from "../backend.ts";
import { checkStates } from "../_check_states.ts";
import { mergeHostStates } from "./_merge.ts";
import {
  checkOpen,
  checkReadTarget,
  checkRunInputs,
  checkTensorData,
  checkTensorList,
  ownedStorage,
  storageToRelease,
} from "../_check_inputs.ts";
import { checkOptions } from "../../core/_check.ts";
import { runFlash } from "./_flash.ts";
import { runBackward } from "./_backward.ts";
import { runLinearBackward } from "./_linear_backward.ts";
import { checkBackwardInputs } from "../_check_backward.ts";
import { detectKernelPath } from "./wasm/_engine.ts";
import type { CpuKernelPath } from "./wasm/_micro_kernels.ts";
import { createFlashRunner } from "./wasm/_runner.ts";
import { threadsAvailable } from "./wasm/_threads.ts";
import { kernelContext } from "./_kernel_context.ts";
import { runMaterialized } from "./_materialized.ts";
import { runHierarchical } from "./_hierarchical.ts";
import { runLinear } from "./_linear.ts";
import { runPaged } from "./_paged.ts";
import { checkPages, checkRows } from "../_check_pages.ts";
import { projectLowRank } from "./_low_rank.ts";
import { linearStateShape } from "../../core/linear.ts";
import { gatherStrided } from "../_strided.ts";
import { type CpuStorage, cpuTensor, dataOf, hostArray } from "./_storage.ts";

export type { CpuKernelPath };

/** What the CPU backend found in the runtime, beside what `lower()` reads. */
export interface CpuCaps extends BackendCaps {
  /** The kernels' instruction set (also `engine`). */
  readonly engine: CpuKernelPath;
  /** Whether the runtime validates WebAssembly SIMD. */
  readonly simd: boolean;
  /** Whether it validates relaxed SIMD (fused multiply-add). */
  readonly relaxedSimd: boolean;
  /** Threads a large flash run uses, the caller included (1: none started). */
  readonly threads: number;
}

/** The best path this runtime supports, found once. */
const detectedPath = detectKernelPath();

/** Flash tiles per path: the WebAssembly kernels amortize packing over larger tiles. */
const FLASH_TILES: Record<CpuKernelPath, { q: number; kv: number }> = {
  "typescript": { q: 16, kv: 128 },
  "wasm-simd": { q: 64, kv: 128 },
  "wasm-relaxed-simd": { q: 64, kv: 128 },
};

function capsFor(engine: CpuKernelPath, threads: number): CpuCaps {
  return Object.freeze({
    backend: "cpu",
    families: Object.freeze(["materialized", "flash", "hierarchical", "linear", "paged"] as const),
    dtypes: Object.freeze(["f32", "f16"] as const),
    flashTiles: Object.freeze([{ maxHeadDim: Infinity, tile: Object.freeze(FLASH_TILES[engine]) }]),
    anyTile: true,
    maxHeadDim: Infinity,
    // The WebAssembly flash kernel beats the materialized one at every size, decode included.
    materializeUpTo: engine === "typescript" ? 64 * 64 : 0,
    materializedScratch: "per-head",
    packGroups: false,
    engine,
    simd: detectedPath !== "typescript",
    relaxedSimd: detectedPath === "wasm-relaxed-simd",
    threads,
  });
}

/**
 * Capabilities of a CPU backend created with default options: the fastest kernels this runtime
 * supports.
 *
 * @example
 * ```ts
 * import { cpuCaps } from "@attend/attend/cpu";
 * if (!cpuCaps.families.includes("flash")) throw new Error("cpu runs flash");
 * console.log(cpuCaps.engine); // "wasm-relaxed-simd" where the runtime has relaxed SIMD
 * ```
 */
export const cpuCaps: CpuCaps = capsFor(detectedPath, defaultThreads(detectedPath));

/** Options of `createCpuBackend()`. */
export interface CpuBackendOptions {
  /**
   * Which kernels run: `"auto"` (default) the fastest the runtime supports; `"typescript"` the
   * plain reference kernels; a WebAssembly path to require it.
   */
  readonly kernels?: "auto" | CpuKernelPath;
  /**
   * Threads a large flash run may use, the caller included. Default: the runtime's
   * `navigator.hardwareConcurrency` (at most 8) where Web Workers, blob URLs and shared memory
   * exist, else 1. Workers start on the first run that uses them and stop after 250 ms idle or
   * at `dispose()`. Results are bit-identical whatever the count.
   */
  readonly threads?: number;
}

/** The default thread count for a path. */
function defaultThreads(path: CpuKernelPath): number {
  if (path === "typescript" || !threadsAvailable()) return 1;
  return Math.max(1, Math.min(8, globalThis.navigator?.hardwareConcurrency ?? 1));
}

const KERNEL_CHOICES = ["auto", "wasm-relaxed-simd", "wasm-simd", "typescript"];

function chooseThreads(path: CpuKernelPath, threads: number | undefined): number {
  if (threads === undefined) return defaultThreads(path);
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) {
    throw new RangeError(
      `Cannot create CPU backend: options.threads must be an integer in 1..64, current value is ${threads}`,
    );
  }
  if (threads > 1 && (path === "typescript" || !threadsAvailable())) {
    throw new RangeError(
      `Cannot create CPU backend: options.threads above 1 needs WebAssembly kernels, Web Workers and shared memory (kernels ${path}), current value is ${threads}`,
    );
  }
  return threads;
}

function chooseEngine(kernels: CpuBackendOptions["kernels"] = "auto"): CpuKernelPath {
  if (!KERNEL_CHOICES.includes(kernels)) {
    throw new RangeError(
      `Cannot create CPU backend: options.kernels must be one of ${
        KERNEL_CHOICES.join(", ")
      }, current value is ${JSON.stringify(kernels)}`,
    );
  }
  if (kernels === "auto") return detectedPath;
  const supported = kernels === "typescript" || kernels === detectedPath ||
    (kernels === "wasm-simd" && detectedPath === "wasm-relaxed-simd");
  if (!supported) {
    throw new RangeError(
      `Cannot create CPU backend: options.kernels must be a path this runtime supports (best: ${detectedPath}), current value is ${
        JSON.stringify(kernels)
      }`,
    );
  }
  return kernels;
}

/** Elements a kernel can address in one tensor (`lower()` refuses larger extents). */
const MAX_ELEMENTS = 2 ** 32;

/** A host array for a new tensor, refused by name before allocating what no kernel could use. */
function allocate(dtype: DType, elements: number, shape: readonly number[]) {
  if (elements > MAX_ELEMENTS) {
    throw new RangeError(
      `Cannot create tensor: shape [${shape}] must have at most ${MAX_ELEMENTS} elements, current element count is ${elements}`,
    );
  }
  try {
    return hostArray(dtype, elements);
  } catch {
    throw new RangeError(
      `Cannot create tensor: shape [${shape}] must fit in memory, current element count is ${elements}`,
    );
  }
}

/**
 * Creates a CPU backend.
 *
 * @param options Which kernels run (default: the fastest the runtime supports).
 * @returns The backend; it holds no resources beyond its tensors and kernel memory.
 * @throws {TypeError} If `options` has an unknown key or a value of the wrong kind.
 * @throws {RangeError} If `options.kernels` names a path the runtime does not support.
 * @example
 * ```ts
 * import { createCpuBackend } from "@attend/attend/cpu";
 * const cpu = createCpuBackend();
 * import { permute } from "@attend/attend/core";
 * const t = cpu.tensor([1, 2, 3, 4], [2, 2]);
 * if ((await cpu.read(t))[3] !== 4) throw new Error("round trip");
 * const target = new Float32Array(4); // filled in place, nothing allocated
 * await cpu.readInto(permute(t, [1, 0]), target);
 * if (target.join() !== "1,3,2,4") throw new Error("transposed view read row-major");
 * const [a, b] = await cpu.readMany([t, permute(t, [1, 0])]);
 * if (a[1] !== 2 || b[1] !== 3) throw new Error("one round trip, each its own view");
 * ```
 */
export function createCpuBackend(options?: CpuBackendOptions): Backend {
  const { kernels, threads } = checkOptions("create CPU backend", "options", options, {
    kernels: "string",
    threads: "number",
  });
  const engine = chooseEngine(kernels);
  const caps = capsFor(engine, chooseThreads(engine, threads));
  const runner = engine === "typescript" ? undefined : createFlashRunner(engine, caps.threads);
  const owner = {};
  let disposed = false;
  const storageOf = (t: Tensor, role: string) => {
    checkOpen(disposed, "cpu");
    return ownedStorage<CpuStorage>(t, "cpu", owner, role);
  };
  /** Checks every tensor, then gathers each into the target `targetOf` gives it. */
  const readAll = (tensors: readonly Tensor[], targetOf: (t: Tensor) => Float32Array) => {
    checkOpen(disposed, "cpu");
    checkTensorList(tensors);
    const role = (i: number) => tensors.length > 1 ? `tensors[${i}]` : "tensor";
    const storages = tensors.map((t, i) => storageOf(t, role(i)));
    return tensors.map((t, i) => gatherStrided(storages[i].data, t, targetOf(t)));
  };
  return {
    name: "cpu",
    caps,
    tensor(data: ArrayLike<number>, shape: readonly number[], dtype: DType = "f32"): Tensor {
      checkOpen(disposed, "cpu");
      const desc = tensorDesc(shape, dtype);
      checkTensorData(data, desc);
      const host = allocate(dtype, numel(desc), shape);
      host.set(data);
      return cpuTensor(host, shape, dtype, owner);
    },
    // deno-lint-ignore require-await
    async read(t: Tensor): Promise<Float32Array> {
      return readAll([t], (t) => new Float32Array(numel(t)))[0];
    },
    // deno-lint-ignore require-await
    async readInto(t: Tensor, target: Float32Array): Promise<Float32Array> {
      return readAll([t], (t) => (checkReadTarget(target, t, "tensor"), target))[0];
    },
    // deno-lint-ignore require-await
    async readMany(tensors: readonly Tensor[]): Promise<Float32Array[]> {
      return readAll(tensors, (t) => new Float32Array(numel(t)));
    },
    plan(spec: AttentionSpec): KernelPlan {
      checkOpen(disposed, "cpu");
      return lower(spec, caps);
    },
    // deno-lint-ignore require-await
    async prepare(plan: KernelPlan): Promise<void> {
      checkOpen(disposed, "cpu");
      assertPlan(plan, caps);
    },
    async run(plan: KernelPlan, given: RunInputs): Promise<RunOutputs> {
      checkOpen(disposed, "cpu");
      assertPlan(plan, caps);
      checkRunInputs<CpuStorage>(plan, given, "cpu", owner);
      const pages = checkPages(plan, given);
      // Low-rank plans' kernels read the projected keys and values.
      const io = plan.lowRank ? projectLowRank(plan, given, owner) : given;
      const { batch, heads, qLen, kvLen, valueDim } = plan.sizes;
      const ctx = kernelContext(plan, io);
      const probs = plan.outputs.probs ? new Float32Array(batch * heads * qLen * kvLen) : undefined;
      const out = () => cpuTensor(ctx.out, [batch, heads, qLen, valueDim], plan.dtype, owner);
      if (plan.family === "linear") {
        const state = runLinear(ctx, io.state);
        return { out: out(), state: cpuTensor(state, linearStateShape(plan), "f32", owner) };
      }
      if (pages) runPaged(ctx, io.k, io.v, pages);
      else if (plan.family === "hierarchical") runHierarchical(ctx, io.gates);
      else if (plan.family === "flash" && runner) await runner.run(ctx, io);
      else if (plan.family === "flash") runFlash(ctx);
      else runMaterialized(ctx, probs);
      return {
        out: out(),
        ...(ctx.lse ? { lse: cpuTensor(ctx.lse, [batch, heads, qLen], "f32", owner) } : {}),
        ...(probs ? { probs: cpuTensor(probs, [batch, heads, qLen, kvLen], "f32", owner) } : {}),
      };
    },
    // deno-lint-ignore require-await
    async backward(plan: KernelPlan, io: BackwardInputs): Promise<Gradients> {
      checkOpen(disposed, "cpu");
      assertPlan(plan, caps);
      const { gradient } = checkBackwardInputs<CpuStorage>(plan, io, "cpu", owner);
      const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = plan.sizes;
      const { dq, dk, dv, ...params } = plan.family === "linear"
        ? runLinearBackward(plan, io)
        : runBackward(plan, io as SoftmaxBackwardInputs, gradient);
      return {
        dq: cpuTensor(dq, [batch, heads, qLen, headDim], plan.dtype, owner),
        dk: cpuTensor(dk, [batch, kvHeads, kvLen, headDim], plan.dtype, owner),
        dv: cpuTensor(dv, [batch, kvHeads, kvLen, valueDim], plan.dtype, owner),
        ...params,
      };
    },
    // deno-lint-ignore require-await
    async scatterRows(target: Tensor, rows: Int32Array, source: Tensor): Promise<void> {
      const context = "scatter rows";
      const data = storageOf(target, "target").data;
      storageOf(source, "source");
      checkRows(context, target, rows, source);
      const width = numel(target) / Math.max(1, target.shape[0]);
      const values = gatherStrided(dataOf(source), source, new Float32Array(numel(source)));
      rows.forEach((row, i) => data.set(values.subarray(i * width, (i + 1) * width), row * width));
    },
    // deno-lint-ignore require-await
    async gatherRows(source: Tensor, rows: Int32Array): Promise<Tensor> {
      const data = storageOf(source, "source").data;
      checkRows("gather rows", source, rows);
      const shape = [rows.length, ...source.shape.slice(1)];
      const width = numel({ shape: source.shape.slice(1) });
      const host = allocate(source.dtype, rows.length * width, shape);
      const staged = new Float32Array(width);
      rows.forEach((row, i) => {
        const view = {
          ...source,
          shape: source.shape.slice(1),
          strides: source.strides.slice(1),
          offset: source.offset + row * source.strides[0],
        };
        host.set(gatherStrided(data, view, staged), i * width);
      });
      return cpuTensor(host, shape, source.dtype, owner);
    },
    // deno-lint-ignore require-await
    async mergeStates(states: readonly AttentionState[]): Promise<AttentionState> {
      checkOpen(disposed, "cpu");
      const sizes = checkStates(states);
      states.forEach((s, i) => {
        storageOf(s.out, `states[${i}].out`), storageOf(s.lse, `states[${i}].lse`);
      });
      const { out, lse } = mergeHostStates(states, sizes);
      return {
        out: cpuTensor(out, states[0].out.shape, states[0].out.dtype, owner),
        lse: cpuTensor(lse, states[0].lse.shape, "f32", owner),
      };
    },
    release(t: Tensor): void {
      checkOpen(disposed, "cpu");
      const storage = storageToRelease<CpuStorage>(t, "cpu", owner);
      if (storage) storage.released = true;
    },
    dispose(): void {
      disposed = true;
      runner?.dispose();
    },
  };
}
