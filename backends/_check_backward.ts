/**
 * Checks of what a backward pass is handed, shared by every backend's `backward()`: a softmax or
 * linear plan it can differentiate, the forward's inputs as `run` checks them, and the saved `out`,
 * `lse` (softmax) and the gradient `dOut` with the shapes and dtypes the plan implies. All before
 * any work.
 * @module
 */
import type { KernelPlan } from "../core/lower.ts";
import { UnsupportedSpecError } from "../core/errors.ts";
import { type ScoreModGradient, scoreModGradient } from "../core/score_mod_gradient.ts";
import type { DType } from "../core/tensor_desc.ts";
import type { BackwardInputs, OwnedStorage, Tensor } from "./backend.ts";
import { checkRunInputs, ownedStorage } from "./_check_inputs.ts";

/** The storages of a backward pass's tensors, and the score modifier's derivatives. */
export interface CheckedBackward<S extends OwnedStorage> {
  /** Every tensor's storage; `lse` for softmax plans only. */
  readonly storages: Record<Exclude<keyof BackwardInputs, "lse">, S> & { readonly lse?: S };
  readonly gradient?: ScoreModGradient;
}

/**
 * Checks a backward pass's plan and inputs.
 *
 * @throws {UnsupportedSpecError} For a plan that is neither plain softmax attention (family,
 * hierarchy, paging, low-rank) nor linear, or a score modifier with an op that has no derivative.
 * @throws {TypeError} For missing, foreign or released tensors, or a wrong dtype.
 * @throws {RangeError} For tensors whose shapes differ from the plan's.
 */
export function checkBackwardInputs<S extends OwnedStorage>(
  plan: KernelPlan,
  io: BackwardInputs,
  backend: string,
  owner: object,
): CheckedBackward<S> {
  if (!["flash", "materialized", "linear"].includes(plan.family)) {
    throw new UnsupportedSpecError(backend, "backward of family", plan.family);
  }
  for (const field of ["hierarchy", "paging", "lowRank"] as const) {
    if (plan[field]) throw new UnsupportedSpecError(backend, `backward of ${field}`, "set");
  }
  if (io === null || typeof io !== "object") {
    throw new TypeError(
      `Cannot run backward: inputs must be { q, k, v, out, lse?, dOut }, current value is ${io}`,
    );
  }
  const gradient = plan.scoreMod && scoreModGradient(plan.scoreMod, backend);
  const { q, k, v } = checkRunInputs<S>(plan, { q: io.q, k: io.k, v: io.v }, backend, owner);
  const { batch, heads, qLen, valueDim } = plan.sizes;
  const rows = [batch, heads, qLen];
  const saved = (role: "out" | "lse" | "dOut", dtype: DType, shape: number[]) => {
    const t = io[role];
    if (t === undefined) {
      throw new TypeError(
        `Cannot run backward: ${role} must be a tensor, current value is undefined`,
      );
    }
    const storage = ownedStorage<S>(t, backend, owner, role);
    checkDesc(t, role, dtype, shape);
    return storage;
  };
  // Linear attention has no log-sum-exp: its backward pass recomputes the denominators.
  const linear = plan.family === "linear";
  const storages = {
    q,
    k,
    v,
    out: saved("out", plan.dtype, [...rows, valueDim]),
    ...(linear ? {} : { lse: saved("lse", "f32", rows) }),
    dOut: saved("dOut", plan.dtype, [...rows, valueDim]),
  };
  return gradient ? { storages, gradient } : { storages };
}

function checkDesc(t: Tensor, role: string, dtype: DType, shape: readonly number[]): void {
  if (t.dtype !== dtype) {
    throw new TypeError(
      `Cannot run backward: ${role}.dtype must be ${dtype} as planned, current value is ${t.dtype}`,
    );
  }
  if (String(t.shape) !== String(shape)) {
    throw new RangeError(
      `Cannot run backward: ${role}.shape must be [${shape}] as planned, current value is [${t.shape}]`,
    );
  }
}
