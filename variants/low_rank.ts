/**
 * Low-rank attention (Linformer): keys and values projected along the sequence axis.
 * @module
 */
import { descOf } from "../core/_desc.ts";
import { assertLowRank } from "../core/low_rank.ts";
import type { Transform } from "../core/transforms.ts";
import { type AttentionSpec, specSizes } from "../core/spec.ts";
import { assertDesc, type TensorDesc } from "../core/tensor_desc.ts";
import { assertObject } from "../core/_check.ts";

const CONTEXT = "create low-rank attention";

/**
 * Low-rank attention (Linformer, Wang et al. 2020): the `Nk` keys and values are projected along
 * the sequence axis to `k` rows, `K' = E·K` and `V' = F·V` (per batch and KV head), and the
 * queries attend to those rows with softmax:
 *
 * `out = softmax(q·(E·K)ᵀ·scale) · (F·V)`
 *
 * `E` and `F` are `[k, Nk]`, shared by every KV head as in Linformer's default, or `[Hkv, k, Nk]`,
 * one per KV head; give the same tensor twice for Linformer's key-value sharing. They are
 * descriptors here and tensors at run time (`run(plan, { q, k, v, e, f })`), like learned weights
 * (Linformer trains them; random Gaussian entries of variance `1/k` are the untrained baseline).
 * The projection is computed in f32 and the projected rows are stored in q's dtype (f16 storage
 * rounds them, as an f16 Linformer's projection layer does).
 *
 * Cost: `2·Nk·k·(D + Dv)` per batch and KV head to project, then attention over `k` keys on the
 * flash (or materialized) kernel: `O(Nq·k·(D + Dv))` per head instead of `O(Nq·Nk·(D + Dv))`.
 * Scratch: the projected rows, `B·Hkv·k·(D + Dv)`; never an `Nq×Nk` buffer.
 *
 * A projected row mixes every key, so masks and score modifiers that read `kvIdx` or `kvLen`
 * (causal, windows, ALiBi) cannot apply after projection: `lower()` refuses them, and `probs`
 * (they would be over projected rows), `hierarchical()` and `linear()`. Masks over `b`, `h` and
 * `qIdx` only, sink logits, score modifiers over `score`, `lse`, GQA and tiles work as usual.
 *
 * @param e Key projection `[k, Nk]` or `[Hkv, k, Nk]`, in q's dtype (descriptor or tensor).
 * @param f Value projection, shaped like `e` or the other choice of sharing, with the same `k`.
 * @returns The transform; it checks the projections against the spec's sizes.
 * @throws {TypeError} If `e` or `f` is not a descriptor, or (on apply) its dtype is not q's.
 * @throws {RangeError} (On apply) for a shape other than `[k, Nk]` / `[Hkv, k, Nk]`, a `k`
 * outside `1..Nk-1`, or rows that differ between `e` and `f`, naming the field and value.
 * @example
 * ```ts
 * import { attention, compose, createBackend, explain, groupHeads, lowRank } from "@attend/attend";
 *
 * const cpu = await createBackend("cpu");
 * const x = cpu.tensor(new Float32Array(1 * 2 * 64 * 8).fill(0.5), [1, 2, 64, 8]);
 * // Each projected row averages 4 keys: k = 16 rows from Nk = 64.
 * const e = cpu.tensor(Float32Array.from({ length: 16 * 64 }, (_, i) => (i % 64 >> 2) === (i / 64 | 0) ? 0.25 : 0), [16, 64]);
 * const plan = cpu.plan(compose(groupHeads(), lowRank(e, e))(attention(x, x, x)));
 * if (!explain(plan).summary.includes("low-rank")) throw new Error("explain shows the projection");
 * const { out } = await cpu.run(plan, { q: x, k: x, v: x, e, f: e });
 * const y = await cpu.read(out);
 * if (y.some((a) => Math.abs(a - 0.5) > 1e-6)) throw new Error(`got ${y[0]}`);
 * cpu.dispose();
 * ```
 */
export function lowRank(e: TensorDesc, f: TensorDesc): Transform {
  assertDesc(e, CONTEXT, "e");
  assertDesc(f, CONTEXT, "f");
  const projections = Object.freeze({ e: descOf(e), f: descOf(f) });
  return (spec: AttentionSpec) => {
    assertObject(spec, "apply lowRank()", "spec", "an AttentionSpec from attention()");
    assertLowRank(projections, "apply lowRank()", { ...specSizes(spec), dtype: spec.q.dtype });
    return Object.freeze({ ...spec, lowRank: projections });
  };
}
