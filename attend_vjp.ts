/**
 * `attendVjp()`: `vjp()` in the shape of `attend()`, with the learnable parameters (sink logits,
 * ALiBi slopes) as options whose gradients come back by name.
 * @module
 */
import { attention } from "./core/spec.ts";
import { compose, groupHeads, sinkLogits, type Transform } from "./core/transforms.ts";
import { alibi } from "./core/score_mods.ts";
import { headParam } from "./core/expr.ts";
import { exprKey, headParams } from "./core/expr_tree.ts";
import { checkOptions } from "./core/_check.ts";
import type { Backend, Gradients, Tensor } from "./backends/backend.ts";
import {
  assertBackend,
  checkSharedOptions,
  SHARED_OPTIONS,
  sharedTransforms,
} from "./_attend_options.ts";
import type { SharedAttendOptions } from "./attend.ts";
import { vjp } from "./vjp.ts";

/** Options of `attendVjp()`: `attend()`'s masks and modifiers, and learnable parameters. */
export interface AttendVjpOptions extends Omit<SharedAttendOptions, "lse"> {
  /** A learned sink logit per query head (see `sinkLogits()`); its gradient is returned. */
  readonly sinkLogits?: readonly number[];
  /** ALiBi slopes, one per query head (see `alibi()`), applied before the softcap. */
  readonly alibi?: readonly number[];
}

/** `attendVjp()`'s gradients: `vjp()`'s, and those of the options' parameters by name. */
export interface AttendGradients extends Gradients {
  /** `∂loss/∂options.alibi`, when given. */
  readonly dAlibiSlopes?: readonly number[];
}

/** The forward pass's results and its backward pass. */
export interface AttendVjpResult {
  /** `[B, Hq, Nq, Dv]`. */
  readonly out: Tensor;
  /** `[B, Hq, Nq]` f32 (softmax attention; absent when `transforms` make it linear). */
  readonly lse?: Tensor;
  /** The gradients given `∂loss/∂out`; may be called again (see `vjp()`). */
  backward(dOut: Tensor): Promise<AttendGradients>;
}

const CONTEXT = "attendVjp";

const { lse: _lse, ...SHARED } = SHARED_OPTIONS;
const OPTIONS = { ...SHARED, sinkLogits: "array", alibi: "array" } as const;

/**
 * Runs attention like `attend()` and returns its vector-Jacobian product (see `vjp()`).
 *
 * @param backend A backend with `backward()`, owning q, k and v.
 * @param q Queries `[B, Hq, Nq, D]` (any strided view).
 * @param k Keys `[B, Hkv, Nk, D]`; fewer KV heads than query heads means GQA.
 * @param v Values `[B, Hkv, Nk, Dv]`.
 * @param options Masks, softcap, sink logits, ALiBi slopes, extra transforms.
 * @returns `out`, `lse` and `backward(dOut)`, whose result names `dSinkLogits` and
 * `dAlibiSlopes` when those options were given.
 * @throws {TypeError} For a non-backend, non-tensors, an unknown option (the nearest known one
 * is suggested) or an option of the wrong kind, before any work.
 * @throws {RangeError} For bad sizes or option values (e.g. a slope per head missing), before
 * any work.
 * @throws {UnsupportedSpecError} As `vjp()` does.
 * @example
 * ```ts
 * import { attendVjp, createBackend } from "@attend/attend";
 * import { assertAlmostEquals, assertRejects } from "@std/assert";
 * const cpu = await createBackend("cpu");
 * const x = cpu.tensor(new Float32Array(4 * 8).fill(1), [1, 1, 4, 8]);
 * const { backward } = await attendVjp(cpu, x, x, x, { causal: true, sinkLogits: [0] });
 * const { dSinkLogits } = await backward(cpu.tensor(new Float32Array(4 * 8).fill(1), [1, 1, 4, 8]));
 * // Row i sees i + 1 keys of score 8/√8 and the sink of score 0: out_i = P_keys, D_i = 8·P_keys,
 * // and ∂loss/∂sink = −Σ_i P_sink,i · D_i.
 * const s = Math.exp(Math.sqrt(8));
 * const expected = -[1, 2, 3, 4].reduce((acc, n) => acc + 8 * (n * s) / (n * s + 1) / (n * s + 1), 0);
 * assertAlmostEquals(dSinkLogits![0], expected, 1e-5);
 * await assertRejects(() => attendVjp(cpu, x, x, x, { alibi: [0.5, 0.25] }), RangeError, "slopes.length must equal q heads (1)");
 * ```
 */
export async function attendVjp(
  backend: Backend,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options?: AttendVjpOptions,
): Promise<AttendVjpResult> {
  assertBackend(CONTEXT, backend);
  const opts = checkOptions(CONTEXT, "options", options, OPTIONS);
  checkSharedOptions(CONTEXT, opts);
  const spec = attention(q, k, v, { scale: opts.scale });
  const transforms: Transform[] = [];
  if (spec.k.shape[1] !== spec.q.shape[1]) transforms.push(groupHeads());
  if (opts.alibi) transforms.push(alibi(opts.alibi));
  if (opts.sinkLogits) transforms.push(sinkLogits(opts.sinkLogits));
  transforms.push(...sharedTransforms(opts), ...(opts.transforms ?? []));
  const full = compose(...transforms)(spec);
  const slopes = opts.alibi && exprKey(headParam(opts.alibi));
  const slopesAt = slopes && full.scoreMod
    ? headParams(full.scoreMod).findIndex((p) => exprKey(p) === slopes)
    : -1;
  const result = await vjp(backend, full, { q, k, v });
  return {
    out: result.out,
    ...(result.lse ? { lse: result.lse } : {}),
    backward: async (dOut) => {
      const grads = await result.backward(dOut);
      return slopesAt < 0 ? grads : { ...grads, dAlibiSlopes: grads.dHeadParams![slopesAt] };
    },
  };
}
