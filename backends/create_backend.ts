/**
 * `createBackend`: the built-in backends plus whatever was registered.
 * @module
 */
import { type Backend, backendFactory, backendNames, registerBackend } from "./backend.ts";

registerBackend("cpu", async () => (await import("./cpu/mod.ts")).createCpuBackend());
registerBackend("webgpu", async () => (await import("./webgpu/mod.ts")).createWebGpuBackend());

/**
 * Creates a backend by name. `"auto"` picks WebGPU when an adapter exists, else CPU.
 *
 * @param name "auto", "cpu", "webgpu" or a registered name.
 * @returns The backend.
 * @throws {TypeError} If no backend is registered under `name`.
 * @example
 * ```ts
 * import { createBackend } from "@attend/attend";
 * const cpu = await createBackend("cpu");
 * if (cpu.name !== "cpu") throw new Error("cpu expected");
 * ```
 */
export async function createBackend(name = "auto"): Promise<Backend> {
  if (name === "auto") {
    const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
    const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
    return createBackend(adapter ? "webgpu" : "cpu");
  }
  const factory = backendFactory(name);
  if (!factory) {
    throw new TypeError(
      `Cannot create backend: name must be "auto" or one of ${
        backendNames().join(", ")
      }, current value is ${name}`,
    );
  }
  return await factory();
}
