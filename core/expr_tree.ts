/**
 * Walks over Expr trees: the structural check every Expr-taking function runs first, canonical
 * keys, variable reads, `score` substitution and head parameters.
 * @module
 */
import type { Expr, VarName } from "./expr.ts";
import { select } from "./expr.ts";
import { checkedType, expect, isBinary, node } from "./_expr_type.ts";

/**
 * Checks that a value is a well-formed Expr: known ops, known variable names, finite literals and
 * head parameters, operand types that fit; for a mask also bool and not reading `score`, for a
 * score modifier numeric. Hand-built trees are checked node by node; built ones in O(1).
 *
 * @param value The value to check.
 * @param context What the caller cannot do otherwise, e.g. "apply mask".
 * @param field How the caller names the value, e.g. "mask".
 * @param role `"mask"` or `"modifier"` for the extra checks of those roles.
 * @throws {TypeError} Naming the offending node's path, e.g. `mask.a.name`, and its value.
 * @throws {RangeError} For a non-finite literal or head parameter.
 * @example
 * ```ts
 * import { assertExpr, causal } from "@attend/attend/core";
 * import { assertThrows } from "@std/assert";
 * assertExpr(causal(), "apply mask", "mask", "mask");
 * assertThrows(
 *   () => assertExpr({ op: "var", name: "foo" }, "apply mask", "mask"),
 *   TypeError,
 *   'mask.name must be one of b, h, qIdx, kvIdx, qLen, kvLen, score, current value is "foo"',
 * );
 * ```
 */
export function assertExpr(
  value: unknown,
  context: string,
  field: string,
  role?: "mask" | "modifier",
): asserts value is Expr {
  const t = checkedType(value, context, field);
  if (role === "modifier") expect(t, "numeric", context, field);
  if (role !== "mask") return;
  expect(t, "bool", context, field);
  if (reads(value as Expr, "score")) {
    throw new TypeError(
      `Cannot ${context}: ${field} must not read score, current ${field} reads score`,
    );
  }
}

const keys = new WeakMap<Expr, string>();

/**
 * A canonical string for an Expr: equal trees give equal keys (used in cache keys).
 *
 * @param e The expression.
 * @returns The key.
 * @throws {TypeError} If `e` is not a well-formed Expr.
 * @example
 * ```ts
 * import { exprKey, kvIdx, le, qIdx } from "@attend/attend/core";
 * if (exprKey(le(kvIdx, qIdx)) !== exprKey(le(kvIdx, qIdx))) throw new Error("keys differ");
 * ```
 */
export function exprKey(e: Expr): string {
  assertExpr(e, "compute expression key", "e");
  return keyOf(e);
}

function keyOf(e: Expr): string {
  const known = keys.get(e);
  if (known) return known;
  let key: string;
  switch (e.op) {
    case "var":
      key = e.name;
      break;
    case "lit":
      key = String(e.value);
      break;
    case "headParam":
      key = `param[${e.values.join(",")}]`;
      break;
    case "lookup":
    case "searchSorted":
      key = `${e.op}[${e.values.join(",")}](${keyOf(e.a)})`;
      break;
    case "select":
      key = `select(${keyOf(e.cond)},${keyOf(e.a)},${keyOf(e.b)})`;
      break;
    default:
      key = isBinary(e) ? `${e.op}(${keyOf(e.a)},${keyOf(e.b)})` : `${e.op}(${keyOf(e.a)})`;
  }
  if (Object.isFrozen(e)) keys.set(e, key);
  return key;
}

/**
 * Whether an Expr reads a variable.
 *
 * @param e The expression.
 * @param name The variable.
 * @returns True if any node reads it.
 * @throws {TypeError} If `e` is not a well-formed Expr.
 * @example
 * ```ts
 * import { causal, readsVar } from "@attend/attend/core";
 * if (readsVar(causal(), "score")) throw new Error("masks do not read score");
 * ```
 */
export function readsVar(e: Expr, name: VarName): boolean {
  assertExpr(e, "inspect expression", "e");
  return reads(e, name);
}

function reads(e: Expr, name: VarName): boolean {
  switch (e.op) {
    case "var":
      return e.name === name;
    case "lit":
    case "headParam":
      return false;
    case "select":
      return reads(e.cond, name) || reads(e.a, name) || reads(e.b, name);
    default:
      return reads(e.a, name) || (isBinary(e) && reads(e.b, name));
  }
}

/**
 * Replaces every `score` in `e` with `inner` (composes score modifiers).
 *
 * @param e The outer expression.
 * @param inner What `score` becomes.
 * @returns The substituted tree.
 * @throws {TypeError} If either is not a well-formed Expr.
 * @example
 * ```ts
 * import { evaluate, mul, score, substituteScore } from "@attend/attend/core";
 * const twice = substituteScore(mul(score, 2), mul(score, 3));
 * if (evaluate(twice, { score: 1 }) !== 6) throw new Error("expected 6");
 * ```
 */
export function substituteScore(e: Expr, inner: Expr): Expr {
  assertExpr(e, "substitute score", "e");
  assertExpr(inner, "substitute score", "inner");
  return substitute(e, inner);
}

function substitute(e: Expr, inner: Expr): Expr {
  switch (e.op) {
    case "var":
      return e.name === "score" ? inner : e;
    case "lit":
    case "headParam":
      return e;
    case "select":
      return select(substitute(e.cond, inner), substitute(e.a, inner), substitute(e.b, inner));
    case "lookup":
    case "searchSorted":
      return node({ op: e.op, values: e.values, a: substitute(e.a, inner) });
    default:
      return isBinary(e)
        ? node({ op: e.op, a: substitute(e.a, inner), b: substitute(e.b, inner) })
        : node({ op: e.op, a: substitute(e.a, inner) });
  }
}

/**
 * Every headParam node in an Expr, in first-seen order (for code generators).
 *
 * @param e The expression.
 * @returns The distinct headParam nodes.
 * @throws {TypeError} If `e` is not a well-formed Expr.
 * @example
 * ```ts
 * import { add, headParam, headParams, score } from "@attend/attend/core";
 * if (headParams(add(score, headParam([1, 2]))).length !== 1) throw new Error("one param");
 * ```
 */
export function headParams(e: Expr): Expr[] {
  assertExpr(e, "list head parameters", "e");
  const found: Expr[] = [];
  const visit = (x: Expr): void => {
    switch (x.op) {
      case "headParam":
        if (!found.some((f) => keyOf(f) === keyOf(x))) found.push(x);
        break;
      case "var":
      case "lit":
        break;
      case "select":
        visit(x.cond), visit(x.a), visit(x.b);
        break;
      default:
        visit(x.a);
        if (isBinary(x)) visit(x.b);
    }
  };
  visit(e);
  return found;
}
