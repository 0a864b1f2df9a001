/**
 * The passes of a linear run that depend on the keys: Performer's features (q and k rows) when
 * the map is Performer's, the chunk states, the scan that carries the state from chunk to chunk
 * and writes the new state, and the intra-chunk scores (causal). The forward's output pass reads
 * what they leave, and so does the backward pass, which needs the same states and scores: both
 * encode them through `encodeKeySide`.
 * Scratch (f32): the chunk states (`B·Hs·⌈Nk/C⌉·F·(Dv+1)`), `C` scores per query row (causal),
 * the decays, Performer's features.
 * @module
 */
import type { KernelPlan } from "../../core/lower.ts";
import { type Binding, type Bindings, checkBinding } from "./_dispatch.ts";
import type { LinearEncoder } from "./_linear_encoder.ts";
import {
  type LinearKernels,
  normalizerOf,
  paramsOf,
  performerBuffer,
  stateSizes,
} from "./_linear_kernels.ts";
import { LINEAR_BINDINGS } from "./kernels/linear_wgsl.ts";

/** What the key-side passes leave for the passes after them. */
export interface KeySide {
  /** The bindings that give a pass `phi_q` (q rows, or Performer's q features) and literals. */
  readonly qRows: Bindings;
  /** Likewise for `phi_k`. */
  readonly kRows: Bindings;
  /** γ per query head, f32. */
  readonly decay: GPUBuffer;
  /** Each chunk's state before it, `[B, Hs, T, F, W]` f32. */
  readonly work: GPUBuffer;
  /** What stands in for the input state binding. */
  readonly stateIn: Binding;
  /** The intra-chunk scores, `C` per query row (causal plans). */
  readonly scores?: GPUBuffer;
  /** Performer's matrix `W` (Performer plans). */
  readonly matrix?: GPUBuffer;
}

/** Byte size of a features buffer of `rows` rows (never below 16). */
const featureBytes = (rows: number, features: number): number => Math.max(16, 4 * rows * features);

/**
 * Encodes the passes that depend on the keys (and queries, for scores): Performer's features,
 * the chunk states, the scan (writing the new state into `state`, `[B, Hq, F, W]` f32) and the
 * intra-chunk scores of causal plans.
 *
 * @param enc The run being encoded.
 * @param kernels The plan's forward pipelines.
 * @param inputs q, k, v and the input state, bound.
 * @param state Where the scan writes the new state.
 * @param literals The map's literal words, when it lifts any (a backward pass binds a longer
 * block: its gradient's literals follow the map's).
 * @returns The bindings and scratch the later passes read (released with the run's scratch).
 */
export function encodeKeySide(
  enc: LinearEncoder,
  kernels: LinearKernels,
  inputs: { readonly q: Binding; readonly k: Binding; readonly v: Binding; stateIn?: Binding },
  state: GPUBuffer,
  literals: Uint32Array | undefined,
): KeySide {
  const { plan, run, temporary } = enc;
  const { batch, heads, kvHeads, qLen, kvLen, headDim } = plan.sizes;
  const { features, causal } = paramsOf(plan);
  const { decay: db, work: wb, literals: litb, stateIn: sb, out: ob, phiQ, phiK, matrix } =
    LINEAR_BINDINGS;
  const { chunks, shared } = stateSizes(plan);
  const work = temporary(4 * shared * chunks, "chunk states");
  const decay = temporary(4 * heads, "decay");
  const gammas = normalizerOf(plan).decay;
  enc.device.queue.writeBuffer(
    decay,
    0,
    Float32Array.from({ length: heads }, (_, h) => gammas?.[h] ?? 1),
  );
  const lits: Bindings = literals ? { [litb]: enc.uniform(literals.buffer as ArrayBuffer) } : {};
  const map = normalizerOf(plan).featureMap;
  // Elementwise maps read q and k rows directly; Performer's passes read its features.
  const wm = map.kind === "performer"
    ? performerBuffer(enc.device, enc.pool, map, headDim)
    : undefined;
  const qRows: Bindings = wm
    ? { [phiQ]: temporary(featureBytes(batch * heads * qLen, features), "q features") }
    : { 1: inputs.q, ...lits };
  const kRows: Bindings = wm
    ? { [phiK]: temporary(featureBytes(batch * kvHeads * kvLen, features), "k features") }
    : { 2: inputs.k, ...lits };
  if (kernels.features && wm) {
    run(kernels.features.q, batch * heads * qLen * features, {
      1: inputs.q,
      [matrix]: wm,
      [phiQ]: qRows[phiQ],
    });
    run(kernels.features.k, batch * kvHeads * kvLen * features, {
      2: inputs.k,
      [matrix]: wm,
      [phiK]: kRows[phiK],
    });
  }
  run(kernels.chunks, shared * chunks, { ...kRows, 3: inputs.v, [db]: decay, [wb]: work });
  // Without an input state the scan never reads its binding: any small buffer stands in.
  const stateIn = inputs.stateIn ?? temporary(16, "no state");
  run(kernels.scan, shared, { [db]: decay, [wb]: work, [sb]: stateIn, [ob]: state });
  let scores: GPUBuffer | undefined;
  if (kernels.scores && causal) {
    const entries = batch * heads * qLen * plan.tile.kv;
    scores = temporary(4 * entries, "scores");
    run(kernels.scores, entries, {
      ...qRows,
      ...kRows,
      [db]: decay,
      [LINEAR_BINDINGS.scores]: scores,
    });
  }
  return {
    qRows,
    kRows,
    decay,
    work,
    stateIn,
    ...(scores ? { scores } : {}),
    ...(wm ? { matrix: wm } : {}),
  };
}

/**
 * Checks the key-side scratch of a plan, and its new state, against the binding size.
 * @throws {RangeError} If a buffer exceeds the device's binding size, naming it.
 */
export function checkKeySide(device: GPUDevice, label: string, plan: KernelPlan): void {
  const { batch, heads, kvHeads, qLen, kvLen } = plan.sizes;
  const { features, causal, featureMap } = paramsOf(plan);
  const { chunks, state, shared } = stateSizes(plan);
  checkBinding(device, label, "chunk states", 4 * chunks * shared);
  checkBinding(device, label, "state", 4 * state);
  checkBinding(device, label, "scores", causal ? 4 * batch * heads * qLen * plan.tile.kv : 0);
  if (featureMap.kind === "performer") {
    checkBinding(device, label, "q features", featureBytes(batch * heads * qLen, features));
    checkBinding(device, label, "k features", featureBytes(batch * kvHeads * kvLen, features));
  }
}
