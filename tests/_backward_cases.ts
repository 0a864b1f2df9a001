/**
 * Score modifiers with hand-written derivatives, for the backward tests: each built as an Expr
 * for the library and as plain callbacks (value, `∂/∂score`, `∂/∂slope[h]`) for the oracle.
 * @module
 */
import fc from "fast-check";
import {
  add,
  alibi,
  compose,
  kvIdx,
  mul,
  score,
  scoreMod,
  softcap,
  type Transform,
} from "../core/mod.ts";
import type { BackwardCase } from "./_backward_oracle.ts";

type Fn = (s: number, b: number, h: number, i: number, j: number) => number;

/** A modifier as transforms and as the oracle's callbacks (for `qLen`, `kvLen`). */
export interface ModifierCase {
  readonly name: string;
  readonly transforms: readonly Transform[];
  /** The oracle's callbacks; ALiBi's read `slopes` at each call (finite differences move them). */
  readonly callbacks: (qLen: number, kvLen: number, slopes: readonly number[]) => Pick<
    BackwardCase,
    "modify" | "dModify" | "dSlope"
  >;
  /** The ALiBi slopes, when the modifier has them. */
  readonly slopes?: readonly number[];
}

const softcapFns = (cap: number, inner: Fn, dInner: Fn) => ({
  modify: ((...x) => cap * Math.tanh(inner(...x) / cap)) as Fn,
  dOuter: ((...x) => 1 - Math.tanh(inner(...x) / cap) ** 2) as Fn,
  dInner,
});

/** softcap(c), a bias `score·a + kvIdx/4`, ALiBi, and ALiBi under a softcap, for `heads` heads. */
export function modifierCase(heads: number): fc.Arbitrary<ModifierCase> {
  const slopesArb = fc.array(fc.double({ min: -0.3, max: 0.3, noNaN: true }), {
    minLength: heads,
    maxLength: heads,
  });
  const cap = fc.double({ min: 0.5, max: 4, noNaN: true });
  return fc.oneof(
    cap.map((c): ModifierCase => ({
      name: `softcap(${c})`,
      transforms: [softcap(c)],
      callbacks: () => {
        const f = softcapFns(c, (s) => s, () => 1);
        return { modify: f.modify, dModify: f.dOuter };
      },
    })),
    fc.double({ min: 0.25, max: 2, noNaN: true }).map((a): ModifierCase => ({
      name: `scaled(${a}) + kvIdx/4`,
      transforms: [scoreMod(add(mul(score, a), mul(kvIdx, 0.25)))],
      callbacks: () => ({ modify: (s, _b, _h, _i, j) => s * a + j / 4, dModify: () => a }),
    })),
    fc.tuple(slopesArb, fc.option(cap, { nil: undefined })).map(([slopes, c]): ModifierCase => ({
      name: c === undefined ? `alibi(${slopes})` : `softcap(${c}, alibi(${slopes}))`,
      transforms: c === undefined ? [alibi(slopes)] : [compose(alibi(slopes), softcap(c))],
      slopes,
      callbacks: (qLen, kvLen, live) => {
        const dist = (i: number, j: number) => j - (i + kvLen - qLen);
        const inner: Fn = (s, _b, h, i, j) => s + live[h] * dist(i, j);
        if (c === undefined) {
          return { modify: inner, dModify: () => 1, dSlope: (_s, _b, _h, i, j) => dist(i, j) };
        }
        const f = softcapFns(c, inner, () => 1);
        return {
          modify: f.modify,
          dModify: f.dOuter,
          dSlope: (s, b, h, i, j) => f.dOuter(s, b, h, i, j) * dist(i, j),
        };
      },
    })),
  );
}
