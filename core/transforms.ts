/**
 * Transforms: pure functions from spec to spec, combined with `compose`.
 * @module
 */
import { and, type Expr } from "./expr.ts";
import { assertExpr, exprKey, substituteScore } from "./expr_tree.ts";
import {
  assertKernelFamily,
  assertScale,
  assertSinkLogits,
  assertTile,
  type AttentionSpec,
  type KernelFamily,
  type TileShape,
} from "./spec.ts";
import { assertObject, fail } from "./_check.ts";

/** A function from spec to spec. */
export type Transform = (spec: AttentionSpec) => AttentionSpec;

function update(spec: AttentionSpec, changes: Partial<AttentionSpec>, what: string): AttentionSpec {
  assertObject(spec, `apply ${what}`, "spec", "an AttentionSpec from attention()");
  return Object.freeze({ ...spec, ...changes });
}

/**
 * Chains transforms left to right: `compose(f, g)(s) = g(f(s))`.
 *
 * @param transforms The transforms, applied in order.
 * @returns One transform.
 * @throws {TypeError} If a transform is not a function, naming its index.
 * @example
 * ```ts
 * import { attention, causal, compose, mask, scale, tensorDesc } from "@attend/attend/core";
 * const x = tensorDesc([1, 1, 4, 8]);
 * const spec = compose(mask(causal()), scale(0.5))(attention(x, x, x));
 * if (spec.scale !== 0.5 || !spec.mask) throw new Error("both applied");
 * ```
 */
export function compose(...transforms: Transform[]): Transform {
  transforms.forEach((t, i) => {
    if (typeof t !== "function") fail("type", "compose", `transforms[${i}]`, "a function", t);
  });
  return (spec) => transforms.reduce((s, t) => t(s), spec);
}

/**
 * Restricts attention to pairs where `m` is true; stacked masks intersect.
 *
 * @param m A bool Expr over `b, h, qIdx, kvIdx, qLen, kvLen`.
 * @returns The transform.
 * @throws {TypeError} If `m` is not a bool Expr, reads `score` or an unknown variable, naming
 * the node.
 * @example
 * ```ts
 * import { attention, causal, mask, tensorDesc } from "@attend/attend/core";
 * const x = tensorDesc([1, 1, 4, 8]);
 * const once = mask(causal())(attention(x, x, x));
 * if (mask(causal())(once).mask !== once.mask) throw new Error("masks are idempotent");
 * ```
 */
export function mask(m: Expr): Transform {
  assertExpr(m, "apply mask", "mask", "mask");
  return (spec) => {
    if (spec?.mask && exprKey(spec.mask) === exprKey(m)) return spec;
    return update(spec, { mask: spec?.mask ? and(spec.mask, m) : m }, "mask");
  };
}

/**
 * Rewrites each scaled score with a float Expr over `score` (and the index variables); stacked
 * modifiers nest, the later one outermost.
 *
 * @param modifier A numeric Expr.
 * @returns The transform.
 * @throws {TypeError} If `modifier` is not a numeric Expr or reads an unknown variable.
 * @example
 * ```ts
 * import { attention, mul, score, scoreMod, tensorDesc } from "@attend/attend/core";
 * const x = tensorDesc([1, 1, 4, 8]);
 * const spec = scoreMod(mul(score, 2))(attention(x, x, x));
 * if (!spec.scoreMod) throw new Error("modifier set");
 * ```
 */
export function scoreMod(modifier: Expr): Transform {
  assertExpr(modifier, "apply scoreMod", "modifier", "modifier");
  return (spec) =>
    update(spec, {
      scoreMod: spec?.scoreMod ? substituteScore(modifier, spec.scoreMod) : modifier,
    }, "scoreMod");
}

/**
 * Sets the multiplier of `q·k`.
 *
 * @param s A finite number.
 * @returns The transform.
 * @throws {TypeError} If `s` is not a number.
 * @throws {RangeError} If `s` is NaN or infinite.
 * @example
 * ```ts
 * import { attention, scale, tensorDesc } from "@attend/attend/core";
 * const x = tensorDesc([1, 1, 4, 8]);
 * if (scale(1)(attention(x, x, x)).scale !== 1) throw new Error("scale set");
 * ```
 */
export function scale(s: number): Transform {
  assertScale(s);
  return (spec) => update(spec, { scale: s }, "scale");
}

/**
 * Lets query heads share KV heads (GQA, MQA): query head `h` reads KV head `floor(h / (Hq/Hkv))`.
 *
 * @returns The transform.
 * @example
 * ```ts
 * import { attention, groupHeads, tensorDesc } from "@attend/attend/core";
 * const spec = groupHeads()(attention(tensorDesc([1, 8, 4, 8]), tensorDesc([1, 2, 4, 8]), tensorDesc([1, 2, 4, 8])));
 * if (!spec.groupedHeads) throw new Error("grouped");
 * ```
 */
export function groupHeads(): Transform {
  return (spec) => update(spec, { groupedHeads: true }, "groupHeads");
}

/**
 * Requests the flash (tiled, online-softmax) kernel with a tile shape.
 *
 * @param shape Query and key rows per tile.
 * @returns The transform.
 * @throws {TypeError} If `shape` is not an object `{ q, kv }` of numbers (unknown keys refused).
 * @throws {RangeError} If a size is not an integer in 1..1024.
 * @example
 * ```ts
 * import { attention, tensorDesc, tile } from "@attend/attend/core";
 * const x = tensorDesc([1, 1, 4, 8]);
 * if (tile({ q: 2, kv: 2 })(attention(x, x, x)).kernel !== "flash") throw new Error("flash");
 * ```
 */
export function tile(shape: TileShape): Transform {
  assertTile(shape);
  const frozen = Object.freeze({ q: shape.q, kv: shape.kv });
  return (spec) => update(spec, { tile: frozen, kernel: "flash" }, "tile");
}

/**
 * Requests a kernel family: `"materialized"` (scores in memory) or `"flash"` (tiled).
 *
 * @param family The family.
 * @returns The transform.
 * @throws {TypeError} If `family` is unknown.
 * @example
 * ```ts
 * import { attention, kernel, tensorDesc } from "@attend/attend/core";
 * const x = tensorDesc([1, 1, 4, 8]);
 * if (kernel("materialized")(attention(x, x, x)).kernel !== "materialized") throw new Error();
 * ```
 */
export function kernel(family: KernelFamily): Transform {
  assertKernelFamily(family);
  return (spec) => update(spec, { kernel: family }, "kernel");
}

/**
 * Adds a learned sink logit per query head (as in GPT-OSS and StreamingLLM's sink tokens, but as
 * a parameter): a virtual key with score `values[h]` and a zero value that joins every row's
 * softmax denominator, so a row may attend to "nothing". With visible scores `s_j`:
 * `lse = log(Σ exp(s_j) + exp(values[h]))` and `out = Σ exp(s_j - lse) · v_j`; a row that sees
 * no key gives zeros and `lse = values[h]`. Probabilities then sum to less than one. The sink
 * is not scaled and not passed through the score modifier.
 *
 * @param values One finite logit per query head (`lower()` checks the count).
 * @returns The transform.
 * @throws {TypeError} If `values` is not an array of numbers.
 * @throws {RangeError} If it is empty or a value is not finite, naming the index.
 * @example
 * ```ts
 * import { attention, sinkLogits, tensorDesc } from "@attend/attend/core";
 * const x = tensorDesc([1, 2, 4, 8]);
 * const spec = sinkLogits([0.5, -1])(attention(x, x, x));
 * if (spec.sinkLogits?.[1] !== -1) throw new Error("one logit per head");
 * ```
 */
export function sinkLogits(values: readonly number[]): Transform {
  assertSinkLogits(values, "create sink logits");
  const frozen = Object.freeze([...values]);
  return (spec) => update(spec, { sinkLogits: frozen }, "sinkLogits()");
}
