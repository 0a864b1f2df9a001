/**
 * The micro-kernels over one growable memory (an instance per kernel shape, compiled once), and
 * what the runtime supports.
 * @module
 */
import {
  type CpuKernelPath,
  type KernelShape,
  microKernelModule,
  type MicroKernels,
} from "./_micro_kernels.ts";

/** Pages of 64 KiB: wasm32 addresses at most 4 GiB. */
export const MAX_PAGES = 65536;
const PAGE = 65536;

/** Micro-kernels bound to a memory. */
export interface WasmEngine {
  /** The instruction set the modules are written for. */
  readonly path: Exclude<CpuKernelPath, "typescript">;
  /** The kernels specialized for a shape (compiled on first use). */
  kernels(shape: KernelShape): MicroKernels;
  /** A view of the whole memory, grown first to at least `bytes`. */
  reserve(bytes: number): Float32Array;
}

/** The best instruction set this runtime validates, or "typescript" without WebAssembly SIMD. */
export function detectKernelPath(): CpuKernelPath {
  if (typeof WebAssembly !== "object" || typeof WebAssembly.validate !== "function") {
    return "typescript";
  }
  const memory = { initialPages: 1, maximumPages: MAX_PAGES, shared: false };
  const shape = { headDim: 8, tileCols: 8, valueCols: 8 };
  if (WebAssembly.validate(microKernelModule(true, memory, shape))) return "wasm-relaxed-simd";
  if (WebAssembly.validate(microKernelModule(false, memory, shape))) return "wasm-simd";
  return "typescript";
}

/**
 * Micro-kernels for `path` over `memory` (a new one when not given).
 *
 * @param path A WebAssembly path `detectKernelPath()` reported.
 * @param memory A memory to share (e.g. a worker's view of the caller's shared memory).
 */
export function createWasmEngine(
  path: Exclude<CpuKernelPath, "typescript">,
  memory?: WebAssembly.Memory,
): WasmEngine {
  const shared = memory !== undefined && memory.buffer instanceof SharedArrayBuffer;
  const mem = memory ?? new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES });
  const instances = new Map<string, MicroKernels>();
  const instantiate = (shape: KernelShape) => {
    const limits = { initialPages: 1, maximumPages: MAX_PAGES, shared };
    const bytes = microKernelModule(path === "wasm-relaxed-simd", limits, shape);
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
      env: { memory: mem },
    });
    return instance.exports as unknown as MicroKernels;
  };
  let view = new Float32Array(mem.buffer);
  return {
    path,
    kernels(shape: KernelShape): MicroKernels {
      const key = `${shape.headDim},${shape.tileCols},${shape.valueCols}`;
      let kernels = instances.get(key);
      if (!kernels) instances.set(key, kernels = instantiate(shape));
      return kernels;
    },
    reserve(needed: number): Float32Array {
      if (needed > MAX_PAGES * PAGE) {
        throw new RangeError(
          `Cannot run CPU kernel: its working set must fit in 4 GiB of WebAssembly memory, current size is ${needed} bytes`,
        );
      }
      const have = mem.buffer.byteLength;
      if (needed > have) mem.grow(Math.ceil((needed - have) / PAGE));
      if (view.buffer !== mem.buffer || view.length * 4 !== mem.buffer.byteLength) {
        view = new Float32Array(mem.buffer);
      }
      return view;
    },
  };
}
