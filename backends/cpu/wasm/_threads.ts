/**
 * Kernel threads: Web Workers that share the backend's WebAssembly memory and claim tasks of a
 * packed flash run beside the calling thread. They start on the first run that uses them and
 * stop after a short idle time or at `dispose()`, so a program that never disposes its backend
 * still exits (a live worker would keep Deno's event loop running).
 * @module
 */
import { WORKER_SOURCE } from "./_worker_bundle.ts";
import type { ThreadReply, ThreadRequest } from "./_worker.ts";
import type { CpuKernelPath } from "./_micro_kernels.ts";

/** Idle time after which the workers stop. */
const IDLE_MS = 250;

/** A group of workers for one memory. */
export interface KernelThreads {
  /** Threads a run uses, the caller included. */
  readonly count: number;
  /**
   * Sends `request` (with each worker's thread index) to every worker, runs `here` on the
   * calling thread, and resolves when all are done.
   */
  run(
    request: Omit<Extract<ThreadRequest, { kind: "run" }>, "thread">,
    here: () => void,
  ): Promise<void>;
  /** Stops the workers now. */
  dispose(): void;
}

/** Whether this runtime can run kernel threads: workers, blob URLs and shared memory. */
export function threadsAvailable(): boolean {
  return typeof Worker === "function" && typeof SharedArrayBuffer === "function" &&
    typeof Blob === "function" && typeof URL.createObjectURL === "function";
}

/**
 * Creates `count - 1` workers' worth of threads over a shared memory (started lazily).
 *
 * @param path The micro-kernels' instruction set.
 * @param memory A shared WebAssembly memory.
 * @param count Threads in all, the caller included.
 */
export function createKernelThreads(
  path: Exclude<CpuKernelPath, "typescript">,
  memory: WebAssembly.Memory,
  count: number,
): KernelThreads {
  let workers: Worker[] = [];
  let idle: number | undefined;
  const stop = () => {
    clearTimeout(idle);
    idle = undefined;
    for (const w of workers) w.terminate();
    workers = [];
  };
  const start = () => {
    const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "application/javascript" }));
    try {
      workers = Array.from({ length: count - 1 }, () => {
        const w = new Worker(url, { type: "module" });
        w.postMessage({ kind: "init", path, memory } satisfies ThreadRequest);
        return w;
      });
    } finally {
      URL.revokeObjectURL(url);
    }
  };
  const reply = (w: Worker) =>
    new Promise<void>((resolve, reject) => {
      w.onmessage = (event: MessageEvent<ThreadReply>) => {
        if (event.data.ok) resolve();
        else reject(new Error(`CPU kernel thread failed: ${event.data.error}`));
      };
      w.onerror = (event) => {
        event.preventDefault();
        reject(new Error(`CPU kernel thread failed: ${event.message}`));
      };
    });
  return {
    count,
    async run(request, here) {
      clearTimeout(idle);
      if (workers.length === 0) start();
      const done = workers.map(reply);
      workers.forEach((w, i) =>
        w.postMessage({ ...request, thread: i + 1 } satisfies ThreadRequest)
      );
      try {
        here();
        await Promise.all(done);
      } catch (error) {
        stop(); // a failed worker is not reused
        throw error;
      }
      idle = setTimeout(stop, IDLE_MS);
    },
    dispose: stop,
  };
}
