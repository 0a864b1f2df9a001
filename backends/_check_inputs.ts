/**
 * Shared checks of what a backend is handed: live tensors of this very backend instance that
 * stay inside their storage, data of the right length, read targets, plans for this backend.
 * Every check runs before any work, so a refused call changes nothing.
 * @module
 */
import type { KernelPlan } from "../core/lower.ts";
import type { OwnedStorage, RunInputs, Tensor } from "./backend.ts";
import { extent, numel, type TensorDesc } from "../core/tensor_desc.ts";
import { linearStateShape } from "../core/linear.ts";
import { isCausal } from "../core/_linear_lower.ts";

/** Throws unless `data` is array-like and holds exactly the elements of `desc`. */
export function checkTensorData(data: ArrayLike<number>, desc: TensorDesc): void {
  if (data === null || typeof data !== "object" || typeof data.length !== "number") {
    throw new TypeError(
      `Cannot create tensor: data must be an array or typed array, current value is ${
        data === null ? "null" : typeof data
      }`,
    );
  }
  if (data.length !== numel(desc)) {
    throw new RangeError(
      `Cannot create tensor: data.length must equal ${
        numel(desc)
      } for shape [${desc.shape}], current value is ${data.length}`,
    );
  }
}

/**
 * The storage of a live tensor of this backend instance.
 *
 * @param t The tensor.
 * @param backend The backend's name.
 * @param owner The backend instance's token.
 * @param role What the tensor is to the caller ("q", "tensor", …), named in errors.
 * @throws {TypeError} If `t` is not a tensor of this instance, or was released.
 * @throws {RangeError} If its view addresses past its storage.
 */
export function ownedStorage<S extends OwnedStorage>(
  t: Tensor,
  backend: string,
  owner: object,
  role: string,
): S {
  if (t === null || typeof t !== "object" || t.backend !== backend) {
    throw new TypeError(
      `Cannot use ${role}: tensor must belong to backend "${backend}", current value is ${
        t === null || typeof t !== "object" ? String(t) : `a tensor of "${t.backend}"`
      }`,
    );
  }
  const storage = t.storage as S | undefined;
  if (storage?.owner !== owner) {
    throw new TypeError(
      `Cannot use ${role}: tensor must belong to this "${backend}" backend instance, current value is a tensor of another instance`,
    );
  }
  if (storage.released) {
    throw new TypeError(
      `Cannot use ${role}: its storage must be live, current state is released`,
    );
  }
  if (extent(t) > storage.elements) {
    throw new RangeError(
      `Cannot use ${role}: its view must stay inside its storage of ${storage.elements} elements, current extent is ${
        extent(t)
      }`,
    );
  }
  return storage;
}

/**
 * The storage `release()` frees: that of a live tensor of this instance, or `undefined` when
 * this instance already released it (releasing twice is harmless).
 * @throws {TypeError} If `t` is not a tensor of this instance.
 */
export function storageToRelease<S extends OwnedStorage>(
  t: Tensor,
  backend: string,
  owner: object,
): S | undefined {
  const storage = (t as Tensor | null)?.storage as S | undefined;
  if (storage?.released && storage.owner === owner) return undefined;
  return ownedStorage<S>(t, backend, owner, "tensor");
}

/** Throws unless `tensors` (of `readMany`) is an array. */
export function checkTensorList(tensors: readonly Tensor[]): void {
  if (!Array.isArray(tensors)) {
    throw new TypeError(
      `Cannot read tensors: tensors must be an array, current value is ${
        tensors === null ? "null" : typeof tensors
      }`,
    );
  }
}

/** Throws unless `target` is a Float32Array with exactly the elements of `t`. */
export function checkReadTarget(target: Float32Array, t: TensorDesc, role: string): void {
  if (!(target instanceof Float32Array)) {
    throw new TypeError(
      `Cannot read ${role}: target must be a Float32Array, current value is ${
        target === null ? "null" : (target as object)?.constructor?.name ?? typeof target
      }`,
    );
  }
  if (target.length !== numel(t)) {
    throw new RangeError(
      `Cannot read ${role}: target.length must equal ${
        numel(t)
      } for shape [${t.shape}], current value is ${target.length}`,
    );
  }
}

/**
 * The inputs a plan reads: q, k, v, the gates of hierarchical attention given them, and the
 * projections of low-rank attention.
 */
export type InputRole = "q" | "k" | "v" | "gates" | "e" | "f";

/**
 * Checks the state of a linear plan: absent from other plans; a live f32 tensor of this instance
 * shaped `[B, Hq, F, Dv + 1]`; with the causal mask, no more queries than keys (a query before
 * this call's first key would sit among the state's keys, which the state no longer tells apart).
 */
function checkState<S extends OwnedStorage>(
  plan: KernelPlan,
  state: Tensor | undefined,
  backend: string,
  owner: object,
): S | undefined {
  if (state === undefined) return undefined;
  if (plan.family !== "linear") {
    throw new TypeError(
      "Cannot run plan: state must be absent (the plan is not linear), current value is a tensor",
    );
  }
  const storage = ownedStorage<S>(state, backend, owner, "state");
  if (state.dtype !== "f32") {
    throw new TypeError(
      `Cannot run plan: state.dtype must be f32, current value is ${state.dtype}`,
    );
  }
  const want = linearStateShape(plan);
  if (String(state.shape) !== String(want)) {
    throw new RangeError(
      `Cannot run plan: state.shape must be [${want}] ([B, Hq, F, Dv + 1]), current value is [${state.shape}]`,
    );
  }
  const { qLen, kvLen } = plan.sizes;
  if (isCausal(plan.mask) && qLen > kvLen) {
    throw new RangeError(
      `Cannot run plan: q length must be at most k length (${kvLen}) with a causal state, current value is ${qLen}`,
    );
  }
  return storage;
}

/**
 * Checks q, k, v (and the gates a hierarchical plan reads, the state a linear plan reads) against
 * a plan (already checked by core's `assertPlan`) and returns their storages.
 * @throws {TypeError} For foreign or released tensors, gates or a state the plan does not read,
 * or a state that is not f32.
 * @throws {RangeError} For tensors whose descriptors differ from the plan's.
 */
export function checkRunInputs<S extends OwnedStorage>(
  plan: KernelPlan,
  io: RunInputs,
  backend: string,
  owner: object,
): Record<"q" | "k" | "v", S> & { gates?: S; e?: S; f?: S; state?: S } {
  if (io === null || typeof io !== "object") {
    throw new TypeError(`Cannot run plan: inputs must be { q, k, v }, current value is ${io}`);
  }
  const gates = plan.hierarchy?.gates;
  if (!gates && io.gates !== undefined) {
    throw new TypeError(
      "Cannot run plan: gates must be absent (the plan has no hierarchical gates), current value is a tensor",
    );
  }
  const lowRank = plan.lowRank;
  for (const role of ["e", "f"] as const) {
    if (!lowRank && io[role] !== undefined) {
      throw new TypeError(
        `Cannot run plan: ${role} must be absent (the plan is not low-rank), current value is a tensor`,
      );
    }
  }
  const roles: InputRole[] = ["q", "k", "v"];
  if (gates) roles.push("gates");
  if (lowRank) roles.push("e", "f");
  const storages = {} as Record<InputRole, S>;
  for (const role of roles) {
    const t = io[role]!;
    if (t === undefined && (role === "e" || role === "f")) {
      throw new TypeError(
        `Cannot run plan: ${role} must be the low-rank projection tensor [${
          lowRank![role].shape
        }], current value is undefined`,
      );
    }
    storages[role] = ownedStorage<S>(t, backend, owner, role);
    // A low-rank plan's k and v are the projected rows; the run takes the inputs' (lowRank's).
    const want = role === "gates"
      ? gates!
      : role === "e" || role === "f" || (lowRank && role !== "q")
      ? lowRank![role as "e" | "f" | "k" | "v"]
      : plan[role as "q" | "k" | "v"];
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
  const state = checkState<S>(plan, io.state, backend, owner);
  return state ? { ...storages, state } : storages;
}

/** Throws once a backend was disposed: every later call is refused by name. */
export function checkOpen(disposed: boolean, backend: string): void {
  if (disposed) {
    throw new TypeError(
      `Cannot use backend "${backend}": it must not be disposed, current state is disposed`,
    );
  }
}
