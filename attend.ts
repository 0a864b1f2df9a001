/**
 * `attend()`: build the spec, lower it and run it, in one call.
 * @module
 */
import { causal as causalMask, window as windowMask } from "./core/masks.ts";
import { attention } from "./core/spec.ts";
import { compose, groupHeads, mask as maskTransform, type Transform } from "./core/transforms.ts";
import { softcap as softcapTransform } from "./core/score_mods.ts";
import type { Expr } from "./core/expr.ts";
import type { RunOutputs, Tensor } from "./backends/backend.ts";
import type { Backend } from "./backends/backend.ts";

/** Options of `attend()`. */
export interface AttendOptions {
  /** Multiplier of `q·k`; `1/sqrt(D)` by default. */
  readonly scale?: number;
  /** Apply the causal mask (bottom-right aligned). */
  readonly causal?: boolean;
  /** Apply a window mask `{ left, right }`. */
  readonly window?: { readonly left: number; readonly right: number };
  /** Apply a custom mask Expr. */
  readonly mask?: Expr;
  /** Apply softcapping with this cap. */
  readonly softcap?: number;
  /** Further transforms, applied last. */
  readonly transforms?: readonly Transform[];
  /** Also return the log-sum-exp per row. */
  readonly lse?: boolean;
  /** Also return probabilities (materialized kernel). */
  readonly probs?: boolean;
}

/**
 * Runs attention on tensors of one backend. Fewer KV heads than query heads means GQA/MQA.
 *
 * @param backend The backend owning q, k and v.
 * @param q Queries `[B, Hq, Nq, D]` (any strided view).
 * @param k Keys `[B, Hkv, Nk, D]`.
 * @param v Values `[B, Hkv, Nk, Dv]`.
 * @param options Masks, score modifiers and outputs.
 * @returns `out` and, when asked, `lse` and `probs`.
 * @throws {RangeError} / {TypeError} For bad shapes or options, before any work starts.
 * @example
 * ```ts
 * import { attend, createBackend } from "@attend/attend";
 * const cpu = await createBackend("cpu");
 * const x = cpu.tensor(new Float32Array(4 * 8).fill(1), [1, 1, 4, 8]);
 * const { out } = await attend(cpu, x, x, x, { causal: true });
 * if ((await cpu.read(out))[0] !== 1) throw new Error("mean of ones is one");
 * ```
 */
export async function attend(
  backend: Backend,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: AttendOptions = {},
): Promise<RunOutputs> {
  const spec = attention(q, k, v, { scale: options.scale, lse: options.lse, probs: options.probs });
  const transforms: Transform[] = [];
  if (k.shape[1] !== q.shape[1]) transforms.push(groupHeads());
  if (options.causal) transforms.push(maskTransform(causalMask()));
  if (options.window) {
    transforms.push(maskTransform(windowMask(options.window.left, options.window.right)));
  }
  if (options.mask) transforms.push(maskTransform(options.mask));
  if (options.softcap !== undefined) transforms.push(softcapTransform(options.softcap));
  transforms.push(...(options.transforms ?? []));
  const plan = backend.plan(compose(...transforms)(spec));
  return await backend.run(plan, { q, k, v });
}
