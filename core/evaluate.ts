/**
 * The CPU interpretation of Exprs: compiled once into a tree of closures (no `eval`, so it runs on
 * edge runtimes that forbid code generation), then called per element.
 * @module
 */
import { type Expr, typeOf, type VarName } from "./expr.ts";
import { assertExpr } from "./expr_tree.ts";
import { isBinary, VAR_NAMES } from "./_expr_type.ts";
import { checkOptions } from "./_check.ts";
import { countAtMost } from "./_table.ts";

/** Values of the variables an Expr reads; absent ones read as 0. */
export type ExprEnv = { -readonly [K in VarName]?: number };

/** A compiled Expr: bools come back as 1 or 0. */
export type CompiledExpr = (env: ExprEnv) => number;

const compiled = new WeakMap<Expr, CompiledExpr>();

const toI32 = (x: number) => x | 0;

/**
 * Compiles an Expr into a closure (cached per frozen node).
 *
 * @param e The expression.
 * @returns A function of the variables; bools come back as 1 or 0.
 * @throws {TypeError} If `e` is not a well-formed Expr.
 * @example
 * ```ts
 * import { add, compileExpr, kvIdx } from "@attend/attend/core";
 * if (compileExpr(add(kvIdx, 1))({ kvIdx: 2 }) !== 3) throw new Error("expected 3");
 * ```
 */
export function compileExpr(e: Expr): CompiledExpr {
  assertExpr(e, "compile expression", "e");
  return compile(e);
}

function compile(e: Expr): CompiledExpr {
  const known = compiled.get(e);
  if (known) return known;
  const fn = build(e);
  if (Object.isFrozen(e)) compiled.set(e, fn);
  return fn;
}

function build(e: Expr): CompiledExpr {
  switch (e.op) {
    case "var": {
      const name = e.name;
      return (env) => env[name] ?? 0;
    }
    case "lit": {
      const value = e.value;
      return () => value;
    }
    case "headParam": {
      const values = e.values;
      return (env) => values[env.h ?? 0] ?? NaN;
    }
    case "select": {
      const [c, x, y] = [compile(e.cond), compile(e.a), compile(e.b)];
      return (env) => c(env) ? x(env) : y(env);
    }
    case "lookup": {
      const [values, index] = [e.values, compile(e.a)];
      return (env) => values[index(env)] ?? 0;
    }
    case "searchSorted": {
      const [sorted, x] = [e.values, compile(e.a)];
      return (env) => countAtMost(sorted, x(env));
    }
  }
  const x = compile(e.a);
  if (!isBinary(e)) {
    switch (e.op) {
      case "neg":
        return typeOf(e) === "int" ? (env) => toI32(-x(env)) : (env) => -x(env);
      case "abs":
        return typeOf(e) === "int" ? (env) => toI32(Math.abs(x(env))) : (env) => Math.abs(x(env));
      case "not":
        return (env) => x(env) ? 0 : 1;
      case "tanh":
        return (env) => Math.tanh(x(env));
      case "exp":
        return (env) => Math.exp(x(env));
      case "log":
        return (env) => Math.log(x(env));
      case "float":
        return x;
    }
  }
  const y = compile(e.b);
  const int = typeOf(e) === "int";
  switch (e.op) {
    case "add":
      return int ? (env) => toI32(x(env) + y(env)) : (env) => x(env) + y(env);
    case "sub":
      return int ? (env) => toI32(x(env) - y(env)) : (env) => x(env) - y(env);
    case "mul":
      return int ? (env) => Math.imul(x(env), y(env)) : (env) => x(env) * y(env);
    case "div":
      return int
        ? (env) => {
          const d = y(env);
          return d === 0 ? x(env) : toI32(x(env) / d);
        }
        : (env) => x(env) / y(env);
    case "mod":
      return int
        ? (env) => {
          const d = y(env);
          return d === 0 ? 0 : x(env) % d;
        }
        : (env) => x(env) % y(env);
    case "min":
      return (env) => Math.min(x(env), y(env));
    case "max":
      return (env) => Math.max(x(env), y(env));
    case "lt":
      return (env) => x(env) < y(env) ? 1 : 0;
    case "le":
      return (env) => x(env) <= y(env) ? 1 : 0;
    case "gt":
      return (env) => x(env) > y(env) ? 1 : 0;
    case "ge":
      return (env) => x(env) >= y(env) ? 1 : 0;
    case "eq":
      return (env) => x(env) === y(env) ? 1 : 0;
    case "ne":
      return (env) => x(env) !== y(env) ? 1 : 0;
    case "and":
      return (env) => x(env) && y(env) ? 1 : 0;
    case "or":
      return (env) => x(env) || y(env) ? 1 : 0;
  }
  throw new TypeError(`Cannot compile expression: unknown op, current value is ${(e as Expr).op}`);
}

/**
 * Evaluates an Expr at one point.
 *
 * @param e The expression.
 * @param env Variable values; absent ones read as 0.
 * @returns A boolean for bool Exprs, else a number.
 * @throws {TypeError} If `e` is not a well-formed Expr, or `env` not an object of numbers named
 * by variables (an unknown name suggests the nearest).
 * @example
 * ```ts
 * import { causal, evaluate } from "@attend/attend/core";
 * // Nq = 2, Nk = 4: query 0 sits at position 2, so it sees keys 0..2.
 * if (!evaluate(causal(), { qIdx: 0, kvIdx: 2, qLen: 2, kvLen: 4 })) throw new Error("visible");
 * if (evaluate(causal(), { qIdx: 0, kvIdx: 3, qLen: 2, kvLen: 4 })) throw new Error("hidden");
 * ```
 */
export function evaluate(e: Expr, env: ExprEnv): number | boolean {
  const schema = Object.fromEntries(VAR_NAMES.map((name) => [name, "number" as const]));
  const value = compileExpr(e)(checkOptions("evaluate expression", "env", env, schema));
  return typeOf(e) === "bool" ? value !== 0 : value;
}
