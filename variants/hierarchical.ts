/**
 * Hierarchical (compressed-block) attention, as in Native Sparse Attention.
 * @module
 */
import { assertHierarchy, BRANCHES, type BranchWeights } from "../core/hierarchy.ts";
import type { Transform } from "../core/transforms.ts";
import type { AttentionSpec } from "../core/spec.ts";
import { assertDesc, type TensorDesc } from "../core/tensor_desc.ts";
import { assertObject, checkOptions, fail } from "../core/_check.ts";
import { checkKeys } from "./_args.ts";

/** Options of `hierarchical()`. */
export interface HierarchicalOptions {
  /** Keys at full resolution each query sees, itself included (a causal sliding window). */
  readonly window: number;
  /** Keys per summary. */
  readonly block: number;
  /** Keys between consecutive summaries' starts, 1..block. Default: `block` (no overlap). */
  readonly stride?: number;
  /** Summaries whose full keys each query also reads, 0..64. Default: 0 (no selected branch). */
  readonly topK?: number;
  /**
   * Fixed weight of each branch: one number for every head, or one per query head. Default: 1
   * each. Not with `gates`.
   */
  readonly weights?: {
    readonly compressed?: number | readonly number[];
    readonly selected?: number | readonly number[];
    readonly window?: number | readonly number[];
  };
  /**
   * Gates per query and head, `[B, Hq, Nq, 3]` in q's dtype (compressed, selected, window), as
   * NSA's gate network gives them: a descriptor here, the tensor in `run(plan, { q, k, v, gates })`.
   */
  readonly gates?: TensorDesc;
}

const CONTEXT = "create hierarchical attention";

/**
 * Hierarchical attention (Native Sparse Attention's three branches). Query `i` sits at
 * `p = Nk - Nq + i`. Summary `s` covers keys `s·stride .. s·stride + block - 1` (whole blocks
 * only), its key and value the means of theirs (per KV head). With `score(x) = q·x·scale`:
 * - compressed: softmax attention over the summaries whose whole block is at or before `p`;
 * - selected: the `topK` of those summaries with the highest scores (ties: the earlier one) are
 *   expanded to their full keys, and the query attends to the union of those keys;
 * - window: attention over the keys `p - window < j <= p`.
 *
 * `out = w_c·out_c + w_s·out_s + w_w·out_w`, weights fixed per head or gates per query. A branch
 * with no key gives zeros. Selection is per query head. Keys after `p` are never read (causal).
 *
 * ```
 * Nq = Nk = 8, block = stride = 2, window = 2, topK = 1; query 7 (p = 7):
 * summaries  [0 1] [2 3] [4 5] [6 7]   all four whole and at or before 7: compressed
 * selected   the best-scoring one, say [2 3]:        0 0 1 1 0 0 0 0
 * window                                             0 0 0 0 0 0 1 1
 * ```
 *
 * Cost per query head and row at position `p`, with `S = ⌊(p + 1 - block) / stride⌋ + 1`
 * visible summaries: `S + min(S, topK)·block + min(window, p + 1)` score and value products,
 * against `p + 1` for causal attention; pooling costs `Nk·block/stride` per KV head.
 *
 * Runs alone: no mask, score modifier, sink logits, tile or `lse`/`probs` outputs (`lower()`
 * refuses them). GQA reads pooled KV heads like any other.
 *
 * @param options Branch sizes and weights (see `HierarchicalOptions`).
 * @returns The transform; it checks per-head weights and gates against the spec's heads.
 * @throws {TypeError} For options of the wrong kind, an unknown key, or both weights and gates.
 * @throws {RangeError} For sizes out of range (`window` ≥ 1, `block` 1..65536, `stride`
 * 1..block, `topK` 0..64), non-finite weights, or weights or gates that do not fit the spec.
 * @example
 * ```ts
 * import { attend, createBackend, hierarchical } from "@attend/attend";
 *
 * const cpu = await createBackend("cpu");
 * const x = cpu.tensor(new Float32Array(1 * 2 * 64 * 16).fill(0.25), [1, 2, 64, 16]);
 * const nsa = hierarchical({ window: 16, block: 8, stride: 4, topK: 2, weights: { compressed: 0.5 } });
 * const { out } = await attend(cpu, x, x, x, { transforms: [nsa] });
 * // Every branch averages values of 0.25, and the weights sum to 2.5.
 * const y = await cpu.read(out);
 * if (Math.abs(y[y.length - 1] - 0.625) > 1e-6) throw new Error(`got ${y[y.length - 1]}`);
 * cpu.dispose();
 * ```
 */
export function hierarchical(options: HierarchicalOptions): Transform {
  checkKeys(
    CONTEXT,
    options,
    ["window", "block", "stride", "topK", "weights", "gates"],
    "an object",
  );
  const { window, block, weights, gates } = options;
  const stride = options.stride ?? block;
  const topK = options.topK ?? 0;
  if (weights !== undefined) {
    const want = "an object { compressed?, selected?, window? }";
    assertObject(weights, CONTEXT, "options.weights", want);
    const names = Object.fromEntries(Object.keys(weights).map((k) => [k, undefined]));
    checkOptions(
      CONTEXT,
      "options.weights",
      names,
      Object.fromEntries(BRANCHES.map((b) => [b, "number"])),
    );
    for (const branch of BRANCHES) {
      const w = weights[branch];
      if (w !== undefined && typeof w !== "number" && !Array.isArray(w)) {
        fail("type", CONTEXT, `options.weights.${branch}`, "a number or an array of numbers", w);
      }
    }
    if (gates !== undefined) {
      fail("type", CONTEXT, "options", "given weights or gates, not both", options);
    }
  }
  if (gates !== undefined) assertDesc(gates, CONTEXT, "options.gates");
  // Checked now with one head, so that a bad size fails where it was written.
  assertHierarchy({ window, block, stride, topK, ...branchWeights(weights, gates, 1) }, CONTEXT);
  return (spec: AttentionSpec) => {
    assertObject(spec, "apply hierarchical()", "spec", "an AttentionSpec from attention()");
    const heads = spec.q?.shape?.[1] ?? 0;
    const hierarchy = Object.freeze({
      window,
      block,
      stride,
      topK,
      ...branchWeights(weights, gates, heads),
    });
    assertHierarchy(hierarchy, "apply hierarchical()", {
      batch: spec.q.shape[0],
      heads,
      kvHeads: spec.k.shape[1],
      qLen: spec.q.shape[2],
      kvLen: spec.k.shape[2],
      headDim: spec.q.shape[3],
      valueDim: spec.v.shape[3],
      dtype: spec.q.dtype,
    });
    return Object.freeze({ ...spec, hierarchy });
  };
}

/** Weights as per-head arrays (a number repeated), or the gates' descriptor. */
function branchWeights(
  weights: HierarchicalOptions["weights"],
  gates: TensorDesc | undefined,
  heads: number,
): { weights: BranchWeights } | { gates: TensorDesc } {
  if (gates !== undefined) {
    // The descriptor only: a tensor's storage must not enter the spec (plans are hashed as JSON).
    const { dtype, shape, strides, offset } = gates;
    const frozen = {
      dtype,
      shape: Object.freeze([...shape]),
      strides: Object.freeze([...strides]),
    };
    return { gates: Object.freeze({ ...frozen, offset }) };
  }
  const perHead = (w: number | readonly number[] = 1) =>
    Object.freeze(typeof w === "number" ? Array.from({ length: heads }, () => w) : [...w]);
  return {
    weights: Object.freeze(
      Object.fromEntries(
        BRANCHES.map((b) => [b, perHead(weights?.[b])]),
      ) as unknown as BranchWeights,
    ),
  };
}
