/**
 * Counting what a call asks of a backend: every data method of the backend (a wrapper), and on
 * WebGPU every device and queue call (patched on the instance for the duration).
 * @module
 */
import type { Backend } from "../backends/backend.ts";
import type { WebGpuBackend } from "../backends/webgpu/mod.ts";

const DEVICE_METHODS = [
  "createBuffer",
  "createBindGroup",
  "createBindGroupLayout",
  "createPipelineLayout",
  "createShaderModule",
  "createComputePipeline",
  "createComputePipelineAsync",
  "createCommandEncoder",
  "pushErrorScope",
] as const;
const QUEUE_METHODS = ["writeBuffer", "submit", "onSubmittedWorkDone"] as const;

/**
 * Runs `run` and reports what it threw (or rejected with) and the device and queue calls it made
 * on WebGPU (none are counted on other backends).
 */
export async function observe(
  backend: Backend,
  run: () => unknown,
): Promise<{ error: unknown; calls: string[] }> {
  const calls: string[] = [];
  const device = (backend as Partial<WebGpuBackend>).device;
  const patched: [object, string][] = [];
  const patch = (target: object, name: string) => {
    const original = (target as Record<string, (...args: unknown[]) => unknown>)[name];
    Object.defineProperty(target, name, {
      configurable: true,
      value: (...args: unknown[]) => (calls.push(name), original.apply(target, args)),
    });
    patched.push([target, name]);
  };
  if (device) {
    DEVICE_METHODS.forEach((name) => patch(device, name));
    QUEUE_METHODS.forEach((name) => patch(device.queue, name));
  }
  let error: unknown;
  try {
    await run();
  } catch (e) {
    error = e;
  } finally {
    for (const [target, name] of patched) delete (target as Record<string, unknown>)[name];
  }
  return { error, calls };
}

/** Backend methods that move data or touch a device. */
const DATA_METHODS = [
  "tensor",
  "read",
  "readInto",
  "readMany",
  "prepare",
  "run",
  "release",
  "dispose",
] as const;

/** A backend whose data methods count their calls into `calls` (`plan` is pure and not counted). */
export function countingBackend(backend: Backend, calls: string[]): Backend {
  return new Proxy(backend, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== "function" || !(DATA_METHODS as readonly unknown[]).includes(key)) {
        return value;
      }
      return (...args: unknown[]) => (calls.push(String(key)), value.apply(target, args));
    },
  });
}
