/**
 * Shared checks of what a backend is handed: tensors it owns, matching the plan.
 * @module
 */
import type { KernelPlan } from "../core/lower.ts";
import type { Tensor } from "./backend.ts";
import { numel } from "../core/tensor_desc.ts";

/** Throws unless `data` holds exactly the elements of `shape`. */
export function checkTensorData(data: ArrayLike<number>, shape: readonly number[]): void {
  if (!data || typeof data.length !== "number") {
    throw new TypeError(`Cannot create tensor: data must be array-like, current value is ${data}`);
  }
  if (data.length !== numel({ shape })) {
    throw new RangeError(
      `Cannot create tensor: data.length must equal ${
        numel({ shape })
      } for shape [${shape}], current value is ${data.length}`,
    );
  }
}

/** Throws unless `t` is a live tensor of `backend`. */
export function checkOwner(t: Tensor, backend: string, role: string): void {
  if (!t || t.backend !== backend) {
    throw new TypeError(
      `Cannot use ${role}: tensor must belong to backend "${backend}", current value is ${t?.backend}`,
    );
  }
}

/** Throws unless q, k, v belong to `backend` and match the plan's descriptors. */
export function checkRunInputs(
  plan: KernelPlan,
  io: Record<"q" | "k" | "v", Tensor>,
  backend: string,
): void {
  if (plan.backend !== backend) {
    throw new TypeError(
      `Cannot run plan: plan.backend must be "${backend}", current value is ${plan.backend}`,
    );
  }
  for (const role of ["q", "k", "v"] as const) {
    const t = io[role];
    checkOwner(t, backend, role);
    const want = plan[role];
    for (const field of ["dtype", "shape", "strides", "offset"] as const) {
      if (String(t[field]) !== String(want[field])) {
        throw new RangeError(
          `Cannot run plan: ${role}.${field} must be ${want[field]} as planned, current value is ${
            t[field]
          }`,
        );
      }
    }
  }
}
