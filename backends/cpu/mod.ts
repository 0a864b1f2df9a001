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
import { type BackendCaps, type KernelPlan, lower } from "../../core/lower.ts";
import type { AttentionSpec } from "../../core/spec.ts";
import { assertDType, type DType, numel } from "../../core/tensor_desc.ts";
import type { Backend, RunInputs, RunOutputs, Tensor } from "../backend.ts";
import { checkOwner, checkRunInputs, checkTensorData } from "../_check_inputs.ts";
import { runFlash } from "./_flash.ts";
import { kernelContext } from "./_kernel_context.ts";
import { runMaterialized } from "./_materialized.ts";
import { gatherStrided } from "../_strided.ts";
import { type CpuStorage, cpuTensor, dataOf, hostArray } from "./_storage.ts";

/**
 * Capabilities of the CPU backend.
 *
 * @example
 * ```ts
 * import { cpuCaps } from "@attend/attend/cpu";
 * if (!cpuCaps.families.includes("flash")) throw new Error("cpu runs flash");
 * ```
 */
export const cpuCaps: BackendCaps = Object.freeze({
  backend: "cpu",
  families: Object.freeze(["materialized", "flash"] as const),
  dtypes: Object.freeze(["f32", "f16"] as const),
  flashTiles: Object.freeze([{ maxHeadDim: Infinity, tile: Object.freeze({ q: 16, kv: 128 }) }]),
  anyTile: true,
  maxHeadDim: Infinity,
  materializeUpTo: 64 * 64,
  materializedScratch: "per-head",
  packGroups: false,
});

/**
 * Creates a CPU backend.
 *
 * @returns The backend; it holds no resources beyond its tensors.
 * @example
 * ```ts
 * import { createCpuBackend } from "@attend/attend/cpu";
 * const cpu = createCpuBackend();
 * const t = cpu.tensor([1, 2, 3, 4], [2, 2]);
 * if ((await cpu.read(t))[3] !== 4) throw new Error("round trip");
 * ```
 */
export function createCpuBackend(): Backend {
  return {
    name: "cpu",
    caps: cpuCaps,
    tensor(data: ArrayLike<number>, shape: readonly number[], dtype: DType = "f32"): Tensor {
      assertDType(dtype);
      checkTensorData(data, shape);
      const host = hostArray(dtype, numel({ shape }));
      host.set(data);
      return cpuTensor(host, shape, dtype);
    },
    read(t: Tensor): Promise<Float32Array> {
      checkOwner(t, "cpu", "tensor");
      return Promise.resolve(gatherStrided(dataOf(t), t));
    },
    plan(spec: AttentionSpec): KernelPlan {
      return lower(spec, cpuCaps);
    },
    run(plan: KernelPlan, io: RunInputs): Promise<RunOutputs> {
      checkRunInputs(plan, io, "cpu");
      const { batch, heads, qLen, kvLen, valueDim } = plan.sizes;
      const ctx = kernelContext(plan, io);
      const probs = plan.outputs.probs ? new Float32Array(batch * heads * qLen * kvLen) : undefined;
      if (plan.family === "flash") runFlash(ctx);
      else runMaterialized(ctx, probs);
      return Promise.resolve({
        out: cpuTensor(ctx.out, [batch, heads, qLen, valueDim], plan.dtype),
        ...(ctx.lse ? { lse: cpuTensor(ctx.lse, [batch, heads, qLen], "f32") } : {}),
        ...(probs ? { probs: cpuTensor(probs, [batch, heads, qLen, kvLen], "f32") } : {}),
      });
    },
    release(t: Tensor): void {
      checkOwner(t, "cpu", "tensor");
      (t.storage as CpuStorage).released = true;
    },
    dispose(): void {},
  };
}
