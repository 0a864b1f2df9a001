/**
 * Compute pipelines cached by WGSL source, with in-flight de-duplication; compilation errors
 * become exceptions carrying the shader's label.
 * @module
 */

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
