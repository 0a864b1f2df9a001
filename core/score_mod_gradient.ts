/**
 * `scoreModGradient()`: the derivatives of a score modifier, as Exprs, so that every backend's
 * backward pass evaluates them where it evaluates the modifier itself (`evaluate` on the CPU,
 * `toWgsl` in a kernel) and needs no rule of its own per modifier.
 * @module
 */
import {
  add,
  div,
  exp,
  type Expr,
  float,
  ge,
  le,
  lt,
  mul,
  neg,
  select,
  sub,
  tanh,
  typeOf,
} from "./expr.ts";
import { assertExpr, exprKey, headParams } from "./expr_tree.ts";
import { UnsupportedSpecError } from "./errors.ts";
import { featureExpr, type FeatureMap } from "./linear.ts";

/** A score modifier's derivatives with respect to `score` and to each of its head parameters. */
export interface ScoreModGradient {
  /** `∂modifier/∂score`, a float Expr over the same variables as the modifier. */
  readonly dScore: Expr;
  /** The modifier's `headParam` nodes, as `headParams()` lists them (learnable parameters). */
  readonly params: readonly Expr[];
  /** `∂modifier/∂params[p][h]` at head `h` (the head reads only its own value), one per param. */
  readonly dParams: readonly Expr[];
}

/** What a derivative is taken with respect to: `score`, or a headParam node by its key. */
type Wrt = { readonly score: true } | { readonly param: string };

/**
 * Differentiates a score modifier symbolically. Comparisons and `select` conditions are
 * piecewise constant (their derivative is taken as 0, as autograd frameworks do); `min`, `max`
 * and `abs` take the derivative of the branch they pick; int and bool subtrees have none.
 *
 * @param modifier A numeric Expr over `score` (and the index variables, head parameters).
 * @param backend The backend named by an `UnsupportedSpecError`.
 * @returns The derivatives, each a float Expr.
 * @throws {TypeError} If `modifier` is not a numeric Expr.
 * @throws {UnsupportedSpecError} For a float `mod` whose operands depend on `score` or a head
 * parameter (its derivative needs a truncation the Expr language lacks), naming the op.
 * @example
 * ```ts
 * import { evaluate, mul, score, scoreModGradient, tanh, div } from "@attend/attend/core";
 * // softcap(2): d/ds 2·tanh(s/2) = 1 - tanh²(s/2), 1 at s = 0.
 * const { dScore } = scoreModGradient(mul(2, tanh(div(score, 2))), "cpu");
 * if (evaluate(dScore, { score: 0 }) !== 1) throw new Error("slope 1 at 0");
 * ```
 */
export function scoreModGradient(modifier: Expr, backend: string): ScoreModGradient {
  return gradients(modifier, backend, "scoreMod");
}

/** The derivatives of `modifier`; an op without one is refused as `<field> gradient op`. */
function gradients(modifier: Expr, backend: string, field: string): ScoreModGradient {
  assertExpr(modifier, "differentiate score modifier", "modifier", "modifier");
  const params = headParams(modifier);
  const grad = (wrt: Wrt) => derivative(modifier, wrt, backend, field) ?? ZERO;
  return Object.freeze({
    dScore: grad({ score: true }),
    params: Object.freeze(params),
    dParams: Object.freeze(params.map((p) => grad({ param: exprKey(p) }))),
  });
}

const ZERO = float(0);
const ONE = float(1);

/** `d e / d wrt`, or undefined where it is structurally zero (keeps the trees small). */
function derivative(e: Expr, wrt: Wrt, backend: string, field: string): Expr | undefined {
  if (typeOf(e) !== "float") return undefined;
  const d = (x: Expr) => derivative(x, wrt, backend, field);
  switch (e.op) {
    case "var":
      return "score" in wrt && e.name === "score" ? ONE : undefined;
    case "headParam":
      return "param" in wrt && exprKey(e) === wrt.param ? ONE : undefined;
    case "lit":
    case "lookup":
    case "searchSorted":
      return undefined;
    case "select":
      return branch(e.cond, d(e.a), d(e.b));
    case "neg":
      return opt(d(e.a), neg);
    case "float":
      return undefined;
    case "abs":
      return branch(lt(e.a, 0), opt(d(e.a), neg), d(e.a));
    case "tanh":
      return times(d(e.a), sub(1, mul(tanh(e.a), tanh(e.a))));
    case "exp":
      return times(d(e.a), exp(e.a));
    case "log":
      return opt(d(e.a), (da) => div(da, e.a));
    case "add":
      return plus(d(e.a), d(e.b));
    case "sub":
      return plus(d(e.a), opt(d(e.b), neg));
    case "mul":
      return plus(times(d(e.a), e.b), times(d(e.b), e.a));
    case "div":
      return plus(
        opt(d(e.a), (da) => div(da, e.b)),
        opt(d(e.b), (db) => neg(div(mul(db, e.a), mul(e.b, e.b)))),
      );
    case "min":
      return branch(le(e.a, e.b), d(e.a), d(e.b));
    case "max":
      return branch(ge(e.a, e.b), d(e.a), d(e.b));
    case "mod":
      if (d(e.a) || d(e.b)) throw new UnsupportedSpecError(backend, `${field} gradient op`, "mod");
      return undefined;
  }
  return undefined;
}

function opt(x: Expr | undefined, f: (x: Expr) => Expr): Expr | undefined {
  return x && f(x);
}

function plus(x: Expr | undefined, y: Expr | undefined): Expr | undefined {
  return x && y ? add(x, y) : x ?? y;
}

/** `dx · factor`, dropping a factor of one (an int factor alone becomes a float). */
function times(dx: Expr | undefined, factor: Expr): Expr | undefined {
  if (!dx) return undefined;
  if (dx !== ONE) return mul(dx, factor);
  return typeOf(factor) === "int" ? float(factor) : factor;
}

function branch(cond: Expr, x: Expr | undefined, y: Expr | undefined): Expr | undefined {
  return x || y ? select(cond, x ?? ZERO, y ?? ZERO) : undefined;
}

/**
 * The derivative of an elementwise feature map of linear attention (`linear()`), `dφ/dx` as a
 * float Expr over `score` (the input element), by the rules of `scoreModGradient()`; `undefined`
 * for Performer's features, whose pullback the backends write by hand.
 *
 * @param map The feature map.
 * @param backend The backend named by an `UnsupportedSpecError`.
 * @returns The derivative, or `undefined` for Performer.
 * @throws {UnsupportedSpecError} For a custom map with an op that has no derivative.
 * @example
 * ```ts
 * import { evaluate, featureMapGradient } from "@attend/attend/core";
 * // elu(x) + 1 has slope exp(x) below 0 and 1 above.
 * const slope = featureMapGradient({ kind: "elu" }, "cpu")!;
 * if (evaluate(slope, { score: 2 }) !== 1) throw new Error("slope 1 above 0");
 * if (evaluate(slope, { score: -1 }) !== Math.exp(-1)) throw new Error("exp below 0");
 * ```
 */
export function featureMapGradient(map: FeatureMap, backend: string): Expr | undefined {
  const expr = featureExpr(map);
  return expr && gradients(expr, backend, "featureMap").dScore;
}
