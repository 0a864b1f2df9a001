/**
 * WebGPU for tests: the backend when an adapter exists; with ATTEND_REQUIRE_WEBGPU=1 a missing
 * adapter fails the run instead of skipping.
 * @module
 */
import { createWebGpuBackend, type WebGpuBackend } from "../backends/webgpu/mod.ts";

const required = Deno.env.get("ATTEND_REQUIRE_WEBGPU") === "1";

async function tryCreate(): Promise<WebGpuBackend | undefined> {
  try {
    return await createWebGpuBackend();
  } catch (e) {
    if (required) {
      throw new Error(`ATTEND_REQUIRE_WEBGPU=1 but WebGPU is unavailable: ${(e as Error).message}`);
    }
    console.warn(`skipping WebGPU tests: ${(e as Error).message}`);
    return undefined;
  }
}

/** The shared WebGPU backend of a test file, or undefined (tests then skip). */
export const gpu: WebGpuBackend | undefined = await tryCreate();

// Each test file runs in its own runtime: free its device when the file is done, rather than
// leaving every file's device to the process's teardown.
globalThis.addEventListener("unload", () => gpu?.dispose());
