/**
 * A plan's lifted literals (mask and score-modifier constants, tables, sink logits) as the one
 * uniform binding its kernels read. Computed once per plan, since that runs the WGSL generator,
 * and checked against the device before any pipeline is built.
 * @module
 */
import { UnsupportedSpecError } from "../../core/errors.ts";
import type { KernelPlan } from "../../core/lower.ts";
import { literalWords } from "../../core/to_wgsl.ts";
import type { Bindings } from "./_dispatch.ts";
import { LITERALS_BINDING, modifierLiterals } from "./kernels/_common_wgsl.ts";

/** A plan's literals: how many, as uniform words (padded to vec4s), and whether any are the
 * mask's or modifier's. */
export interface PlanLiterals {
  readonly count: number;
  readonly words: Uint32Array;
  readonly scoreLiterals: boolean;
}

const literalsOf = new WeakMap<KernelPlan, PlanLiterals>();

/**
 * A plan's lifted literals as uniform words, and whether its mask and modifier have any (the
 * scores pass reads only those, never the sink logits). Generated once per plan: it runs the
 * WGSL generator.
 */
export function planLiterals(plan: KernelPlan): PlanLiterals {
  let known = literalsOf.get(plan);
  if (!known) {
    const table = modifierLiterals(plan.mask, plan.scoreMod, plan.sinkLogits);
    known = {
      count: table.values.length,
      words: literalWords(table),
      scoreLiterals: modifierLiterals(plan.mask, plan.scoreMod).values.length > 0,
    };
    literalsOf.set(plan, known);
  }
  return known;
}

/**
 * Refuses a plan whose lifted literals (mask and score-modifier constants, tables, sink logits)
 * exceed the device's uniform binding, before any pipeline is built: the shader compiler would
 * otherwise fail with "uniform block too big".
 *
 * @throws {UnsupportedSpecError} Naming the literals' size and the device's limit.
 */
export function assertLiteralsFit(device: GPUDevice, plan: KernelPlan): void {
  const bytes = planLiterals(plan).words.byteLength;
  const limit = device.limits.maxUniformBufferBindingSize;
  if (bytes > limit) {
    throw new UnsupportedSpecError(
      "webgpu",
      "mask, scoreMod and sinkLogits literals",
      `${bytes} bytes (the device binds at most ${limit})`,
    );
  }
}

/** The plan's literals uploaded through `uniform` at the binding its kernels read; none if empty. */
export function literalsBinding(
  plan: KernelPlan,
  uniform: (data: ArrayBuffer) => GPUBuffer,
): Bindings {
  const { count, words } = planLiterals(plan);
  return count ? { [LITERALS_BINDING]: uniform(words.buffer as ArrayBuffer) } : {};
}
