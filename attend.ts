/**
 * `attend()`: build the spec, lower it and run it, in one call.
 * @module
 */
import { attention } from "./core/spec.ts";
import { compose, groupHeads, type Transform } from "./core/transforms.ts";
import { checkOptions } from "./core/_check.ts";
import type { Backend, RunOutputs, Tensor } from "./backends/backend.ts";
import { lowRank as lowRankTransform } from "./variants/low_rank.ts";
import {
  assertBackend,
  checkSharedOptions,
  SHARED_OPTIONS,
  sharedTransforms,
} from "./_attend_options.ts";
import type { Expr } from "./core/expr.ts";

/** The options every convenience takes (`attend()`, `pagedAttend()`, `attendVjp()`): masks, modifiers and outputs. */
export interface SharedAttendOptions {
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
}

/** Options of `attend()`. */
export interface AttendOptions extends SharedAttendOptions {
  /**
   * Linformer's key and value projections (see `lowRank()`): `[k, Nk]` or `[Hkv, k, Nk]` tensors
   * of the backend; not with masks or modifiers that read key positions.
   */
  readonly lowRank?: { readonly e: Tensor; readonly f: Tensor };
  /** Also return probabilities (materialized kernel). */
  readonly probs?: boolean;
}

const CONTEXT = "attend";

const OPTIONS = { ...SHARED_OPTIONS, lowRank: "object", probs: "boolean" } as const;

/** Every check of the options that needs no tensor, in one place, before any work. */
function checkAttendOptions(options: AttendOptions | undefined): AttendOptions {
  const opts = checkOptions(CONTEXT, "options", options, OPTIONS);
  checkSharedOptions(CONTEXT, opts);
  if (opts.lowRank !== undefined) {
    checkOptions(CONTEXT, "options.lowRank", opts.lowRank, { e: "object", f: "object" });
  }
  return opts;
}

/**
 * Runs attention on tensors of one backend. Fewer KV heads than query heads means GQA/MQA.
 * Non-finite data and zero sizes follow `attention()`'s documented semantics on every backend.
 *
 * @param backend The backend owning q, k and v.
 * @param q Queries `[B, Hq, Nq, D]` (any strided view).
 * @param k Keys `[B, Hkv, Nk, D]`.
 * @param v Values `[B, Hkv, Nk, Dv]`.
 * @param options Masks, score modifiers and outputs.
 * @returns `out` and, when asked, `lse` and `probs`.
 * @throws {TypeError} For a non-backend, non-tensors, options that are not an object, an unknown
 * option (the nearest known one is suggested, e.g. `casual` → `causal`) or an option of the
 * wrong kind, all before any work starts.
 * @throws {RangeError} For bad sizes or option values, before any work starts.
 * @example
 * ```ts
 * import { attend, createBackend } from "@attend/attend";
 * import { assertRejects } from "@std/assert";
 * const cpu = await createBackend("cpu");
 * const x = cpu.tensor(new Float32Array(4 * 8).fill(1), [1, 1, 4, 8]);
 * const { out } = await attend(cpu, x, x, x, { causal: true });
 * if ((await cpu.read(out))[0] !== 1) throw new Error("mean of ones is one");
 * // Linformer: the 4 keys and values averaged pairwise into 2 rows.
 * const e = cpu.tensor([0.5, 0.5, 0, 0, 0, 0, 0.5, 0.5], [2, 4]);
 * const low = await attend(cpu, x, x, x, { lowRank: { e, f: e } });
 * if ((await cpu.read(low.out))[0] !== 1) throw new Error("means of ones are one");
 * await assertRejects(() => attend(cpu, x, x, x, { casual: true } as never), TypeError, 'did you mean "causal"?');
 * ```
 */
export async function attend(
  backend: Backend,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options?: AttendOptions,
): Promise<RunOutputs> {
  assertBackend(CONTEXT, backend);
  const opts = checkAttendOptions(options);
  const spec = attention(q, k, v, { scale: opts.scale, lse: opts.lse, probs: opts.probs });
  const transforms: Transform[] = [];
  if (spec.k.shape[1] !== spec.q.shape[1]) transforms.push(groupHeads());
  transforms.push(...sharedTransforms(opts));
  if (opts.lowRank) transforms.push(lowRankTransform(opts.lowRank.e, opts.lowRank.f));
  transforms.push(...(opts.transforms ?? []));
  const plan = backend.plan(compose(...transforms)(spec));
  const projections = opts.lowRank ? { e: opts.lowRank.e, f: opts.lowRank.f } : {};
  return await backend.run(plan, { q, k, v, ...projections });
}
