/**
 * Transforms: pure functions from spec to spec, combined with `compose`.
 * @module
 */
import { type Expr, exprKey, readsVar, substituteScore, typeOf } from "./expr.ts";
import { and } from "./expr.ts";
import { assertScale, type AttentionSpec, type KernelFamily, type TileShape } from "./spec.ts";

/** A function from spec to spec. */
export type Transform = (spec: AttentionSpec) => AttentionSpec;

function update(spec: AttentionSpec, changes: Partial<AttentionSpec>): AttentionSpec {
  return Object.freeze({ ...spec, ...changes });
}

/**
 * Chains transforms left to right: `compose(f, g)(s) = g(f(s))`.
 *
 * @param transforms The transforms, applied in order.
 * @returns One transform.
 * @example
 * ```ts
 * import { attention, causal, compose, mask, scale, tensorDesc } from "@attend/attend/core";
 * const x = tensorDesc([1, 1, 4, 8]);
 * const spec = compose(mask(causal()), scale(0.5))(attention(x, x, x));
 * if (spec.scale !== 0.5 || !spec.mask) throw new Error("both applied");
 * ```
 */
export function compose(...transforms: Transform[]): Transform {
  return (spec) => transforms.reduce((s, t) => t(s), spec);
}

/**
 * Restricts attention to pairs where `m` is true; stacked masks intersect.
 *
 * @param m A bool Expr over `b, h, qIdx, kvIdx, qLen, kvLen`.
 * @returns The transform.
 * @throws {TypeError} If `m` is not bool or reads `score`.
 * @example
 * ```ts
 * import { attention, causal, mask, tensorDesc } from "@attend/attend/core";
 * const x = tensorDesc([1, 1, 4, 8]);
 * const once = mask(causal())(attention(x, x, x));
 * if (mask(causal())(once).mask !== once.mask) throw new Error("masks are idempotent");
 * ```
 */
export function mask(m: Expr): Transform {
  if (typeOf(m) !== "bool") {
    throw new TypeError(`Cannot apply mask: mask must be bool, current type is ${typeOf(m)}`);
  }
  if (readsVar(m, "score")) {
    throw new TypeError("Cannot apply mask: mask must not read score, current mask reads score");
  }
  return (spec) => {
    if (!spec.mask) return update(spec, { mask: m });
    if (exprKey(spec.mask) === exprKey(m)) return spec;
    return update(spec, { mask: and(spec.mask, m) });
  };
}

/**
 * Rewrites each scaled score with a float Expr over `score` (and the index variables); stacked
 * modifiers nest, the later one outermost.
 *
 * @param modifier A numeric Expr.
 * @returns The transform.
 * @throws {TypeError} If `modifier` is bool.
 * @example
 * ```ts
 * import { attention, mul, score, scoreMod, tensorDesc } from "@attend/attend/core";
 * const x = tensorDesc([1, 1, 4, 8]);
 * const spec = scoreMod(mul(score, 2))(attention(x, x, x));
 * if (!spec.scoreMod) throw new Error("modifier set");
 * ```
 */
export function scoreMod(modifier: Expr): Transform {
  if (typeOf(modifier) === "bool") {
    throw new TypeError("Cannot apply scoreMod: modifier must be numeric, current type is bool");
  }
  return (spec) =>
    update(spec, {
      scoreMod: spec.scoreMod ? substituteScore(modifier, spec.scoreMod) : modifier,
    });
}

/**
 * Sets the multiplier of `q·k`.
 *
 * @param s A finite number.
 * @returns The transform.
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
  return (spec) => update(spec, { scale: s });
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
  return (spec) => update(spec, { groupedHeads: true });
}

function assertTileSize(field: string, value: number): void {
  if (!Number.isInteger(value) || value < 1 || value > 1024) {
    throw new RangeError(
      `Cannot set tile: ${field} must be an integer in 1..1024, current value is ${value}`,
    );
  }
}

/**
 * Requests the flash (tiled, online-softmax) kernel with a tile shape.
 *
 * @param shape Query and key rows per tile.
 * @returns The transform.
 * @throws {RangeError} If a size is not an integer in 1..1024.
 * @example
 * ```ts
 * import { attention, tensorDesc, tile } from "@attend/attend/core";
 * const x = tensorDesc([1, 1, 4, 8]);
 * if (tile({ q: 2, kv: 2 })(attention(x, x, x)).kernel !== "flash") throw new Error("flash");
 * ```
 */
export function tile(shape: TileShape): Transform {
  assertTileSize("tile.q", shape.q);
  assertTileSize("tile.kv", shape.kv);
  const frozen = Object.freeze({ q: shape.q, kv: shape.kv });
  return (spec) => update(spec, { tile: frozen, kernel: "flash" });
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
  if (family !== "materialized" && family !== "flash") {
    throw new TypeError(
      `Cannot set kernel: family must be "materialized" or "flash", current value is ${family}`,
    );
  }
  return (spec) => update(spec, { kernel: family });
}
