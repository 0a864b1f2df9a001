/**
 * A CPU backend's WebAssembly flash runner: one memory (shared when threads are on), its
 * micro-kernels, optional kernel threads, and runs taken one at a time (a threaded run awaits its
 * workers, and the next run must not repack the memory under them).
 * @module
 */
import type { RunInputs } from "../../backend.ts";
import type { KernelContext } from "../_kernel_context.ts";
import { createWasmEngine, MAX_PAGES, type WasmEngine } from "./_engine.ts";
import { runFlashWasm } from "./_flash_wasm.ts";
import type { CpuKernelPath } from "./_micro_kernels.ts";
import { createKernelThreads, type KernelThreads } from "./_threads.ts";

/** Runs flash plans on the micro-kernels. */
export interface FlashRunner {
  run(ctx: KernelContext, io: RunInputs): Promise<void>;
  dispose(): void;
}

/**
 * Creates a runner; memory and threads are made on the first run.
 *
 * @param path The micro-kernels' instruction set.
 * @param threads Threads per run, the caller included (1: no workers).
 */
export function createFlashRunner(
  path: Exclude<CpuKernelPath, "typescript">,
  threads: number,
): FlashRunner {
  let engine: WasmEngine | undefined;
  let workers: KernelThreads | undefined;
  let queue: Promise<void> = Promise.resolve();
  const setUp = () => {
    if (engine) return engine;
    if (threads <= 1) return engine = createWasmEngine(path);
    const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    workers = createKernelThreads(path, memory, threads);
    return engine = createWasmEngine(path, memory);
  };
  return {
    run(ctx, io) {
      const run = queue.then(() => runFlashWasm(ctx, io, setUp(), workers));
      queue = run.catch(() => {});
      return run;
    },
    dispose() {
      workers?.dispose();
    },
  };
}
