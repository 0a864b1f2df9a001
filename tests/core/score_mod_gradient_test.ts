import { assertAlmostEquals, assertThrows } from "@std/assert";
import {
  abs,
  add,
  div,
  evaluate,
  exp,
  type Expr,
  gt,
  headParam,
  kvIdx,
  log,
  max,
  min,
  mod,
  mul,
  neg,
  qIdx,
  score,
  scoreModGradient,
  select,
  sub,
  tanh,
  UnsupportedSpecError,
} from "../../core/mod.ts";

const slopes = headParam([0.5, -0.25]);
/** Modifiers covering every differentiable op, with the score kept positive where log reads it. */
const MODIFIERS: [string, Expr][] = [
  ["softcap", mul(3, tanh(div(score, 3)))],
  ["alibi", add(score, mul(slopes, sub(kvIdx, qIdx)))],
  ["quotient", div(add(score, 1), add(mul(slopes, slopes), 2))],
  ["exp and log", log(add(exp(mul(score, slopes)), 1.5))],
  ["min, max, abs, neg", max(min(mul(score, 2), abs(neg(score))), mul(slopes, score))],
  ["select", select(gt(score, 0.1), mul(score, score), mul(slopes, 3))],
];

for (const [name, modifier] of MODIFIERS) {
  Deno.test(`scoreModGradient() of ${name} equals central differences in score and head parameters`, () => {
    const { dScore, params, dParams } = scoreModGradient(modifier, "cpu");
    for (const s of [-1.3, -0.2, 0.35, 0.9, 2.1]) {
      for (const h of [0, 1]) {
        const env = { score: s, h, qIdx: 2, kvIdx: 5, qLen: 4, kvLen: 8 };
        const at = (e: Expr, x: number) => evaluate(e, { ...env, score: x }) as number;
        const eps = 1e-6;
        const fd = (at(modifier, s + eps) - at(modifier, s - eps)) / (2 * eps);
        assertAlmostEquals(at(dScore, s), fd, 1e-5, `d/dscore at ${s}, head ${h}`);
        params.forEach((p, n) => {
          const moved = (delta: number) => {
            const values = p.op === "headParam" ? [...p.values] : [];
            values[h] += delta;
            return evaluate(replaceParam(modifier, p, headParam(values)), env) as number;
          };
          const fdParam = (moved(eps) - moved(-eps)) / (2 * eps);
          assertAlmostEquals(at(dParams[n], s), fdParam, 1e-5, `d/dparam at ${s}, head ${h}`);
        });
      }
    }
  });
}

/** `e` with the node `from` replaced by `to` (by identity). */
function replaceParam(e: Expr, from: Expr, to: Expr): Expr {
  if (e === from) return to;
  const copy = { ...e } as Record<string, unknown>;
  for (const key of ["a", "b", "cond"]) {
    if (key in copy) copy[key] = replaceParam(copy[key] as Expr, from, to);
  }
  return copy as Expr;
}

Deno.test("scoreModGradient() refuses a float mod of the score, naming the op", () => {
  assertThrows(
    () => scoreModGradient(mod(score, 2), "cpu"),
    UnsupportedSpecError,
    'backend "cpu": scoreMod gradient op is unsupported, current value is mod',
  );
});

Deno.test("scoreModGradient() of a modifier without head parameters has none", () => {
  const { params, dParams } = scoreModGradient(mul(score, 2), "cpu");
  if (params.length !== 0 || dParams.length !== 0) throw new Error("no parameters");
});
