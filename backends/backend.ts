/**
 * The backend interface, tensors, and the registry behind `createBackend`.
 * @module
 */
import type { AttentionSpec } from "../core/spec.ts";
import type { BackendCaps, KernelPlan } from "../core/lower.ts";
import type { DType, TensorDesc } from "../core/tensor_desc.ts";

/** A descriptor plus storage owned by one backend. View ops from core keep the storage. */
export interface Tensor extends TensorDesc {
  /** Name of the backend that owns the storage. */
  readonly backend: string;
  /** Backend-specific storage handle. */
  readonly storage: unknown;
}

/**
 * Storage of the built-in backends' tensors: the instance that made it (so another instance
 * refuses the tensor), its element count (so a view cannot address past it) and whether it was
 * released.
 */
export interface OwnedStorage {
  /** Token of the backend instance that made the tensor. */
  readonly owner: object;
  /** Elements the storage holds; views must stay inside. */
  readonly elements: number;
  /** Set by `release()`. */
  released: boolean;
}

/** Inputs of a run. */
export interface RunInputs {
  /** Queries, matching the plan's q descriptor. */
  readonly q: Tensor;
  /** Keys, matching the plan's k descriptor. */
  readonly k: Tensor;
  /** Values, matching the plan's v descriptor. */
  readonly v: Tensor;
  /** Gates `[B, Hq, Nq, 3]` of a hierarchical plan made with `gates` (and only of one). */
  readonly gates?: Tensor;
  /** Key projection `E` of a low-rank plan (and only of one), matching `plan.lowRank.e`. */
  readonly e?: Tensor;
  /** Value projection `F` of a low-rank plan (and only of one), matching `plan.lowRank.f`. */
  readonly f?: Tensor;
  /**
   * Recurrent state of a linear plan (and only of one), `[B, Hq, F, Dv + 1]` f32 as
   * `linearState()` makes it or a run returns it: the keys of earlier calls, which this call's
   * keys follow. Never modified: the run returns the new state. Absent: no earlier keys.
   */
  readonly state?: Tensor;
  /** Block tables and lengths of a paged plan (and only of one); `k` and `v` are its pools. */
  readonly pages?: PagedBatch;
}

/**
 * A paged run's batch (see `page()`): sequence `s` reads its `lengths[s]` keys through row `s`
 * of `tables` and asks `queryLengths[s]` queries, its last tokens.
 */
export interface PagedBatch {
  /** `[B, maxBlocks]` block ids, row-major; -1 marks a block a sliding window released. */
  readonly tables: Int32Array | readonly number[];
  /** Keys each sequence holds, `[B]`, up to `maxBlocks · blockSize`. */
  readonly lengths: Int32Array | readonly number[];
  /** Queries each sequence asks, `[B]`, up to `Nq` and its length; default `Nq` (or its length). */
  readonly queryLengths?: Int32Array | readonly number[];
}

/**
 * The attention state of a set of keys: `out` normalized over them and their log-sum-exp.
 * States over disjoint key sets merge exactly (see `mergeStates`).
 */
export interface AttentionState {
  /** `[..., Dv]`: the rows' outputs. */
  readonly out: Tensor;
  /** `[...]` f32: the rows' log-sum-exp (-Infinity for a row that saw no key). */
  readonly lse: Tensor;
}

/** Results of a run, all contiguous. */
export interface RunOutputs {
  /** `[B, Hq, Nq, Dv]` in the plan's dtype. */
  readonly out: Tensor;
  /** `[B, Hq, Nq]` f32, when the spec asked for it. */
  readonly lse?: Tensor;
  /** `[B, Hq, Nq, Nk]` f32, when the spec asked for it. */
  readonly probs?: Tensor;
  /** A linear plan's state after this call's keys, `[B, Hq, F, Dv + 1]` f32: a new tensor. */
  readonly state?: Tensor;
}

/**
 * What a backward pass reads: the forward's inputs, what the forward saved (`out`, and `lse` for
 * softmax plans, as its run returned them) and the gradient of the loss with respect to `out`.
 */
export interface BackwardInputs {
  /** Queries, matching the plan's q descriptor. */
  readonly q: Tensor;
  /** Keys, matching the plan's k descriptor. */
  readonly k: Tensor;
  /** Values, matching the plan's v descriptor. */
  readonly v: Tensor;
  /** The forward's output `[B, Hq, Nq, Dv]` in the plan's dtype (any view). */
  readonly out: Tensor;
  /** The forward's log-sum-exp `[B, Hq, Nq]` f32 (any view); softmax plans only. */
  readonly lse?: Tensor;
  /** `∂loss/∂out`, `[B, Hq, Nq, Dv]` in the plan's dtype (any view). */
  readonly dOut: Tensor;
}

/** What a softmax plan's backward pass reads: `lse` is required. */
export type SoftmaxBackwardInputs = BackwardInputs & { readonly lse: Tensor };

/** Gradients of a loss through softmax or linear attention. Tensors are new and contiguous. */
export interface Gradients {
  /** `∂loss/∂q`, `[B, Hq, Nq, D]` in the plan's dtype. */
  readonly dq: Tensor;
  /** `∂loss/∂k`, `[B, Hkv, Nk, D]`: summed over each KV head's query heads, in head order. */
  readonly dk: Tensor;
  /** `∂loss/∂v`, `[B, Hkv, Nk, Dv]`, summed likewise. */
  readonly dv: Tensor;
  /** `∂loss/∂sinkLogits`, one per query head, when the plan has sink logits. */
  readonly dSinkLogits?: readonly number[];
  /**
   * `∂loss/∂values` of each `headParam` of the score modifier (e.g. ALiBi slopes), in the order
   * `headParams(plan.scoreMod)` lists them, one number per query head; when it has any.
   */
  readonly dHeadParams?: readonly (readonly number[])[];
  /** `∂loss/∂decay` of a linear plan, one per query head, when the plan has a decay. */
  readonly dDecay?: readonly number[];
}

/** A compute backend: owns tensors, plans specs and runs plans. */
export interface Backend {
  /** Registry name, e.g. "cpu". */
  readonly name: string;
  /** Capabilities given to `lower()`. */
  readonly caps: BackendCaps;
  /** Copies host data into a new contiguous tensor. */
  tensor(data: ArrayLike<number>, shape: readonly number[], dtype?: DType): Tensor;
  /** Reads a tensor (any view) back as a new row-major Float32Array. */
  read(t: Tensor): Promise<Float32Array>;
  /**
   * Reads a tensor into a caller's Float32Array of exactly its element count, allocating
   * nothing; resolves to `target`.
   */
  readInto(t: Tensor, target: Float32Array): Promise<Float32Array>;
  /** Reads several tensors (say a run's `out` and `lse`) in one round trip to the device. */
  readMany(tensors: readonly Tensor[]): Promise<Float32Array[]>;
  /** Lowers a spec for this backend. */
  plan(spec: AttentionSpec): KernelPlan;
  /**
   * Compiles what a plan runs, so that its first `run` does not wait for it (a server calls this
   * at start-up). Resolves at once where nothing needs compiling; rejects, naming the kernel, if
   * compilation fails, and the backend stays usable.
   */
  prepare(plan: KernelPlan): Promise<void>;
  /** Runs a plan on tensors matching its descriptors. */
  run(plan: KernelPlan, io: RunInputs): Promise<RunOutputs>;
  /**
   * Optional: the backward pass of a softmax plan (family `flash` or `materialized`), recomputing
   * the probabilities from q, k and the saved `lse` tile by tile (no `Nq × Nk` buffer), or of a
   * linear plan (family `linear`, by its chunked recurrences forward and in reverse), with
   * reductions in a fixed order so two calls give identical bits. `vjp()` refuses a backend
   * without it. Bad inputs are refused before any work.
   */
  backward?(plan: KernelPlan, io: BackwardInputs): Promise<Gradients>;
  /**
   * Writes `source[i]` over row `rows[i]` of `target`, in place: how the paged KV cache fills its
   * pools, the one storage that changes. Ordered with the runs before and after it.
   *
   * @param target A contiguous tensor of this backend, `[R, ...row]`.
   * @param rows Distinct row indices in `0 .. R - 1`.
   * @param source Any view `[rows.length, ...row]` in the target's dtype (it may view `target`).
   * @returns Resolves once the write is queued and validated; throws before any work for bad input.
   */
  scatterRows(target: Tensor, rows: Int32Array, source: Tensor): Promise<void>;
  /**
   * Copies rows of a tensor into a new contiguous tensor, `[rows.length, ...row]`.
   *
   * @param source Any view `[R, ...row]`.
   * @param rows Row indices in `0 .. R - 1`, repeats allowed.
   * @returns The new tensor.
   */
  gatherRows(source: Tensor, rows: Int32Array): Promise<Tensor>;
  /**
   * Merges two or more states over disjoint key sets into the state over their union:
   * `lse = log Σ e^lse_s`, `out = Σ e^(lse_s - lse) · out_s` (rows that saw no key in any state:
   * zeros and -Infinity). Split-KV decode and shared-prefix (cascade) attention reduce to this.
   *
   * @param states The states, `out` of one dtype and shape, `lse` f32.
   * @returns New contiguous tensors: `out` in the states' dtype, `lse` f32.
   */
  mergeStates(states: readonly AttentionState[]): Promise<AttentionState>;
  /** Frees a tensor's storage; later use of it throws. */
  release(t: Tensor): void;
  /** Frees everything the backend holds; every later call throws. Calling it again does nothing. */
  dispose(): void;
}

/** Makes a backend. */
export type BackendFactory = () => Promise<Backend>;

const factories = new Map<string, BackendFactory>();

/**
 * Registers a backend factory under a name for `createBackend(name)`.
 *
 * @param name The name; registering it again replaces the factory.
 * @param factory Async constructor.
 * @throws {TypeError} If `name` is empty or "auto", or `factory` is not a function.
 * @example
 * ```ts
 * import { createBackend, registerBackend } from "@attend/attend";
 * registerBackend("my-cpu", () => createBackend("cpu"));
 * const backend = await createBackend("my-cpu");
 * if (backend.name !== "cpu") throw new Error("delegates to cpu");
 * ```
 */
export function registerBackend(name: string, factory: BackendFactory): void {
  if (typeof name !== "string" || name === "" || name === "auto") {
    throw new TypeError(
      `Cannot register backend: name must be a non-empty string other than "auto", current value is ${name}`,
    );
  }
  if (typeof factory !== "function") {
    throw new TypeError(
      `Cannot register backend: factory must be a function returning a Promise<Backend>, current value is ${
        factory === null ? "null" : typeof factory
      }`,
    );
  }
  factories.set(name, factory);
}

/** Names of registered backends. */
export function backendNames(): string[] {
  return [...factories.keys()];
}

/** The factory registered under a name, if any. */
export function backendFactory(name: string): BackendFactory | undefined {
  return factories.get(name);
}
