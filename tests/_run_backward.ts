/**
 * Runs a backward test problem through `vjp()`: BNHD views, f16 storage, a kernel family or tile,
 * a mask, a modifier with ALiBi slopes, sink logits; reads every gradient back.
 * @module
 */
import {
  attention,
  causal,
  compose,
  exprKey,
  groupHeads,
  headParam,
  headParams,
  kernel,
  type KernelFamily,
  mask,
  sinkLogits,
  tile,
  type TileShape,
  type Transform,
} from "../core/mod.ts";
import type { Backend, Tensor } from "../backends/backend.ts";
import { vjp } from "../vjp.ts";
import { type MaskCase, oracleCase, type Shape } from "./_arbitraries.ts";
import type { BackwardCase } from "./_backward_oracle.ts";
import type { ModifierCase } from "./_backward_cases.ts";
import { bnhdTensor, problemTensors } from "./_run.ts";

/** How to run a backward problem. */
export interface BackwardRunOptions {
  readonly mask?: MaskCase;
  readonly modifier?: ModifierCase;
  readonly sinks?: readonly number[];
  readonly family?: KernelFamily;
  readonly tile?: TileShape;
  readonly bnhd?: boolean;
  readonly dtype?: "f32" | "f16";
}

/** Every gradient, read back. */
export interface BackwardRun {
  readonly out: Float32Array;
  /** The forward's saved log-sum-exp. */
  readonly lse: Float32Array;
  readonly dq: Float32Array;
  readonly dk: Float32Array;
  readonly dv: Float32Array;
  readonly dSinks?: readonly number[];
  readonly dSlopes?: readonly number[];
  readonly family: KernelFamily;
}

/** Runs forward and backward with `dOut` (same layout and dtype as the inputs). */
export async function runBackward(
  backend: Backend,
  shape: Shape,
  data: { q: Float32Array; k: Float32Array; v: Float32Array },
  dOut: Float32Array,
  options: BackwardRunOptions = {},
): Promise<BackwardRun> {
  const { batch, heads, qLen, valueDim } = shape;
  const dtype = options.dtype ?? "f32";
  const make = (x: Float32Array, s: number[]) =>
    options.bnhd ? bnhdTensor(backend, x, s, dtype) : backend.tensor(x, s, dtype);
  const { q, k, v } = problemTensors(backend, shape, data, options);
  const transforms: Transform[] = [groupHeads()];
  if (options.mask) transforms.push(mask(options.mask.expr));
  transforms.push(...options.modifier?.transforms ?? []);
  if (options.sinks) transforms.push(sinkLogits(options.sinks));
  if (options.family) transforms.push(kernel(options.family));
  if (options.tile) transforms.push(tile(options.tile));
  const spec = compose(...transforms)(attention(q, k, v));
  const forward = await vjp(backend, spec, { q, k, v });
  const gradient = make(dOut, [batch, heads, qLen, valueDim]);
  const grads = await forward.backward(gradient);
  const [out, lse, dq, dk, dv] = await backend.readMany([
    forward.out,
    forward.lse!,
    grads.dq,
    grads.dk,
    grads.dv,
  ]);
  const slopes = options.modifier?.slopes;
  const at = slopes && spec.scoreMod
    ? headParams(spec.scoreMod).findIndex((p) => exprKey(p) === exprKey(headParam(slopes)))
    : -1;
  const tensors: Tensor[] = [q, k, v, gradient, forward.out, forward.lse!, grads.dq, grads.dk];
  for (const t of [...tensors, grads.dv]) backend.release(t);
  return {
    out,
    lse,
    dq,
    dk,
    dv,
    dSinks: grads.dSinkLogits,
    dSlopes: at >= 0 ? grads.dHeadParams![at] : undefined,
    family: backend.plan(spec).family,
  };
}

/** The oracle's case for a problem run with `options`. */
export function backwardCase(
  shape: Shape,
  data: { q: Float32Array; k: Float32Array; v: Float32Array },
  options: BackwardRunOptions,
): BackwardCase {
  const slopes = options.modifier?.slopes ?? [];
  return {
    ...oracleCase(shape, data, 1 / Math.sqrt(shape.headDim), options.mask),
    ...options.modifier?.callbacks(shape.qLen, shape.kvLen, slopes),
    sinks: options.sinks,
  };
}

/** The causal mask with its plain-JS rule (bottom-right aligned). */
export const causalCase: MaskCase = {
  name: "causal",
  expr: causal(),
  allowed: (_b, _h, i, j, nq, nk) => j <= i + nk - nq,
};
