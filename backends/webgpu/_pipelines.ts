/**
 * Compute pipelines cached by WGSL source, with in-flight de-duplication; compilation errors
 * become exceptions carrying the shader's label; `perPlan` keeps a plan family's compiled
 * pipelines per backend and plan object.
 * @module
 */
import type { KernelPlan } from "../../core/lower.ts";

/** What a pipeline cache has compiled. */
export interface CompileStats {
  /** Pipelines compiled successfully. */
  readonly pipelines: number;
  /** Milliseconds their compilations took, summed (each from request to ready). */
  readonly compileMs: number;
}

/** A cache of compute pipelines on one device. */
export class PipelineCache {
  #device: GPUDevice;
  #pipelines = new Map<string, Promise<GPUComputePipeline>>();
  #compiled = 0;
  #compileMs = 0;

  /** @param device The device. */
  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** Number of distinct shaders compiled or compiling. */
  get size(): number {
    return this.#pipelines.size;
  }

  /** Pipelines compiled and the time it took. */
  stats(): CompileStats {
    return { pipelines: this.#compiled, compileMs: this.#compileMs };
  }

  /** The pipeline for `code`, compiled once. */
  get(label: string, code: string): Promise<GPUComputePipeline> {
    let pipeline = this.#pipelines.get(code);
    if (!pipeline) {
      pipeline = this.#compile(label, code);
      pipeline.catch(() => this.#pipelines.delete(code));
      this.#pipelines.set(code, pipeline);
    }
    return pipeline;
  }

  async #compile(label: string, code: string): Promise<GPUComputePipeline> {
    const start = performance.now();
    const pipeline = await this.#build(label, code);
    this.#compiled++;
    this.#compileMs += performance.now() - start;
    return pipeline;
  }

  async #build(label: string, code: string): Promise<GPUComputePipeline> {
    const device = this.#device;
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ label, code });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === "error");
    let pipeline: GPUComputePipeline | undefined;
    let thrown: unknown;
    if (errors.length === 0) {
      try {
        pipeline = await device.createComputePipelineAsync({
          label,
          layout: "auto",
          compute: { module, entryPoint: "main" },
        });
      } catch (e) {
        thrown = e;
      }
    }
    const scoped = await device.popErrorScope();
    if (errors.length || scoped || thrown || !pipeline) {
      const detail = errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join("; ") ||
        scoped?.message || String(thrown);
      throw new Error(`Cannot compile shader "${label}": ${detail}`);
    }
    return pipeline;
  }
}

/**
 * Memoizes a plan family's compilation per pipeline cache (one per backend) and plan object; a
 * failed compilation is forgotten, so the next call compiles again.
 *
 * @param compile Builds a plan's pipelines.
 * @returns `compile`, run once per backend and plan.
 */
export function perPlan<C extends { readonly pipelines: PipelineCache }, K>(
  compile: (compiler: C, plan: KernelPlan) => Promise<K>,
): (compiler: C, plan: KernelPlan) => Promise<K> {
  const compiledOf = new WeakMap<PipelineCache, WeakMap<KernelPlan, Promise<K>>>();
  return (compiler, plan) => {
    let plans = compiledOf.get(compiler.pipelines);
    if (!plans) compiledOf.set(compiler.pipelines, plans = new WeakMap());
    let kernels = plans.get(plan);
    if (!kernels) {
      kernels = compile(compiler, plan);
      kernels.catch(() => plans.delete(plan));
      plans.set(plan, kernels);
    }
    return kernels;
  };
}
