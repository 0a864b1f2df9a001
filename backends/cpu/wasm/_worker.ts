/**
 * A CPU kernel thread. It runs from a bundled copy (`_worker_bundle.ts`, made by
 * `deno task bundle:worker`) loaded through a blob URL, so starting it needs no read, net or
 * import permission. It shares the caller's WebAssembly memory, claims tasks of a packed flash
 * run from the shared counter, and reports when none is left.
 * @module
 */
import type { KernelPlan } from "../../../core/lower.ts";
import type { TileLists } from "../../../core/tile_lists.ts";
import { createWasmEngine, type WasmEngine } from "./_engine.ts";
import type { FlashRegions } from "./_flash_regions.ts";
import { runTasks } from "./_flash_tasks.ts";
import { flashRowsContext } from "./_flash_rows.ts";
import type { CpuKernelPath } from "./_micro_kernels.ts";

/** Messages a thread receives. */
export type ThreadRequest =
  | {
    readonly kind: "init";
    readonly path: Exclude<CpuKernelPath, "typescript">;
    readonly memory: WebAssembly.Memory;
  }
  | {
    readonly kind: "run";
    readonly plan: KernelPlan;
    readonly layout: Pick<
      TileLists,
      "rows" | "pack" | "unitRow" | "rowStart" | "tileCol" | "partial"
    >;
    readonly regions: FlashRegions;
    readonly thread: number;
  };

/** What a thread answers to a run: done, or the error's message. */
export type ThreadReply = { readonly ok: true } | { readonly ok: false; readonly error: string };

let engine: WasmEngine | undefined;

/**
 * Freezes a received (structured-cloned) value deeply: core caches an Expr's checks and
 * compilation per frozen node, and a clone arrives unfrozen.
 */
function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

function handle(request: ThreadRequest): ThreadReply | undefined {
  if (request.kind === "init") {
    engine = createWasmEngine(request.path, request.memory);
    return undefined;
  }
  if (!engine) throw new Error("thread used before init");
  const { layout, regions, thread } = request;
  const plan = deepFreeze(request.plan);
  const rows = flashRowsContext(engine, plan, layout, regions);
  runTasks(rows, new Int32Array(rows.memory.buffer, regions.counter, 1), thread);
  return { ok: true };
}

self.onmessage = (event: MessageEvent<ThreadRequest>) => {
  let reply: ThreadReply | undefined;
  try {
    reply = handle(event.data);
  } catch (error) {
    reply = { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
  if (reply) self.postMessage(reply);
};
