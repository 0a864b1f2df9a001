/**
 * Expression trees for masks and score modifiers, over the variables `b`, `h`, `qIdx`, `kvIdx`,
 * `qLen`, `kvLen` and (in score modifiers) `score`. Exprs are frozen data, never closures, so one
 * tree has three interpretations: `evaluate` (CPU), `toWgsl` (kernel source) and
 * `classifyBlocks` (tile-level interval bounds). Equal trees have equal `exprKey`s.
 *
 * Types: index variables and integer literals are `int` (32-bit, division truncates), `score`,
 * non-integer literals and `headParam` are `float`, comparisons and logic are `bool`. Mixing int
 * and float promotes to float.
 * @module
 */

/** Variables an Expr may read. `qLen`/`kvLen` are the query and key lengths of the call. */
export type VarName = "b" | "h" | "qIdx" | "kvIdx" | "qLen" | "kvLen" | "score";
/** Binary operators. */
export type BinaryOp =
  | "add"
  | "sub"
  | "mul"
  | "div"
  | "mod"
  | "min"
  | "max"
  | "lt"
  | "le"
  | "gt"
  | "ge"
  | "eq"
  | "ne"
  | "and"
  | "or";
/** Unary operators; `float` converts an int to float. */
export type UnaryOp = "neg" | "abs" | "not" | "tanh" | "exp" | "log" | "float";
/** The value type of an Expr. */
export type ExprType = "int" | "float" | "bool";

/** An expression tree node. */
export type Expr =
  | { readonly op: "var"; readonly name: VarName }
  | { readonly op: "lit"; readonly value: number }
  | { readonly op: "headParam"; readonly values: readonly number[] }
  | { readonly op: BinaryOp; readonly a: Expr; readonly b: Expr }
  | { readonly op: UnaryOp; readonly a: Expr }
  | { readonly op: "select"; readonly cond: Expr; readonly a: Expr; readonly b: Expr };

/** Operands of numbers are wrapped as literals. */
export type ExprLike = Expr | number;

const COMPARISON = new Set<string>(["lt", "le", "gt", "ge", "eq", "ne"]);
const LOGIC = new Set<string>(["and", "or"]);
const FLOAT_UNARY = new Set<string>(["tanh", "exp", "log", "float"]);

const types = new WeakMap<Expr, ExprType>();
const keys = new WeakMap<Expr, string>();

/** The value type of an Expr (computed once per node). */
export function typeOf(e: Expr): ExprType {
  const known = types.get(e);
  if (known) return known;
  const t = inferType(e);
  types.set(e, t);
  return t;
}

function inferType(e: Expr): ExprType {
  switch (e.op) {
    case "var":
      return e.name === "score" ? "float" : "int";
    case "lit":
      return Number.isInteger(e.value) ? "int" : "float";
    case "headParam":
      return "float";
    case "select": {
      requireType(e.cond, "bool", "select condition");
      const [ta, tb] = [typeOf(e.a), typeOf(e.b)];
      if ((ta === "bool") !== (tb === "bool")) {
        throw new TypeError(
          `Cannot build select: branches must both be bool or both numeric, current types are ${ta} and ${tb}`,
        );
      }
      return ta === "bool" ? "bool" : promote(ta, tb);
    }
  }
  if ("b" in e) {
    if (LOGIC.has(e.op)) {
      requireType(e.a, "bool", `${e.op} operand`);
      requireType(e.b, "bool", `${e.op} operand`);
      return "bool";
    }
    requireNumeric(e.a, e.op);
    requireNumeric(e.b, e.op);
    return COMPARISON.has(e.op) ? "bool" : promote(typeOf(e.a), typeOf(e.b));
  }
  if (e.op === "not") {
    requireType(e.a, "bool", "not operand");
    return "bool";
  }
  requireNumeric(e.a, e.op);
  return FLOAT_UNARY.has(e.op) ? "float" : typeOf(e.a);
}

function promote(a: ExprType, b: ExprType): ExprType {
  return a === "int" && b === "int" ? "int" : "float";
}

function requireType(e: Expr, want: ExprType, role: string): void {
  const t = typeOf(e);
  if (t !== want) {
    throw new TypeError(`Cannot build expression: ${role} must be ${want}, current type is ${t}`);
  }
}

function requireNumeric(e: Expr, op: string): void {
  if (typeOf(e) === "bool") {
    throw new TypeError(
      `Cannot build expression: ${op} operand must be numeric, current type is bool`,
    );
  }
}

function node<T extends Expr>(e: T): T {
  Object.freeze(e);
  typeOf(e);
  return e;
}

function wrap(x: ExprLike): Expr {
  return typeof x === "number" ? lit(x) : x;
}

/**
 * A numeric literal.
 *
 * @param value A finite number; integers are `int`, others `float`.
 * @returns The literal node.
 * @throws {RangeError} If `value` is not finite.
 * @example
 * ```ts
 * import { evaluate, lit } from "@attend/attend/core";
 * if (evaluate(lit(3), {}) !== 3) throw new Error("expected 3");
 * ```
 */
export function lit(value: number): Expr {
  if (!Number.isFinite(value)) {
    throw new RangeError(`Cannot create literal: value must be finite, current value is ${value}`);
  }
  return node({ op: "lit", value: Object.is(value, -0) ? 0 : value });
}

/** Reads a variable: one of `b`, `h`, `qIdx`, `kvIdx`, `qLen`, `kvLen`, `score`. */
export function variable(name: VarName): Expr {
  return node({ op: "var", name });
}

/** Batch index. */
export const b: Expr = variable("b");
/** Query head index. */
export const h: Expr = variable("h");
/** Query row index, `0 … qLen-1`. */
export const qIdx: Expr = variable("qIdx");
/** Key row index, `0 … kvLen-1`. */
export const kvIdx: Expr = variable("kvIdx");
/** Number of query rows. */
export const qLen: Expr = variable("qLen");
/** Number of key rows. */
export const kvLen: Expr = variable("kvLen");
/** The scaled score `q·k·scale`, readable by score modifiers only. */
export const score: Expr = variable("score");
/** Absolute position of the query row, bottom-right aligned: `qIdx + kvLen - qLen`. */
export const qPos: Expr = node({
  op: "add",
  a: qIdx,
  b: node({ op: "sub", a: kvLen, b: qLen }),
});
/** Absolute position of the key row (its index). */
export const kvPos: Expr = kvIdx;

/**
 * A per-query-head constant, `values[h]` (e.g. ALiBi slopes).
 *
 * @param values One finite number per query head.
 * @returns A float node.
 * @throws {RangeError} If `values` is empty or holds a non-finite number.
 * @example
 * ```ts
 * import { evaluate, headParam } from "@attend/attend/core";
 * if (evaluate(headParam([0.5, 0.25]), { h: 1 }) !== 0.25) throw new Error("expected 0.25");
 * ```
 */
export function headParam(values: readonly number[]): Expr {
  if (values.length === 0) {
    throw new RangeError("Cannot create headParam: values must not be empty, current length is 0");
  }
  values.forEach((v, i) => {
    if (!Number.isFinite(v)) {
      throw new RangeError(
        `Cannot create headParam: values[${i}] must be finite, current value is ${v}`,
      );
    }
  });
  return node({ op: "headParam", values: Object.freeze([...values]) });
}

function binary(op: BinaryOp): (a: ExprLike, b: ExprLike) => Expr {
  return (a, b) => node({ op, a: wrap(a), b: wrap(b) });
}

function unary(op: UnaryOp): (a: ExprLike) => Expr {
  return (a) => node({ op, a: wrap(a) });
}

/** `a + b`. */
export const add: (a: ExprLike, b: ExprLike) => Expr = binary("add");
/** `a - b`. */
export const sub: (a: ExprLike, b: ExprLike) => Expr = binary("sub");
/** `a * b`. */
export const mul: (a: ExprLike, b: ExprLike) => Expr = binary("mul");
/** `a / b`; truncates for two ints (and gives `a` when `b` is 0, as WGSL does). */
export const div: (a: ExprLike, b: ExprLike) => Expr = binary("div");
/** Truncated remainder `a % b` (0 when an int `b` is 0, as WGSL does). */
export const mod: (a: ExprLike, b: ExprLike) => Expr = binary("mod");
/** Smaller of two numbers. */
export const min: (a: ExprLike, b: ExprLike) => Expr = binary("min");
/** Larger of two numbers. */
export const max: (a: ExprLike, b: ExprLike) => Expr = binary("max");
/** `a < b`. */
export const lt: (a: ExprLike, b: ExprLike) => Expr = binary("lt");
/** `a <= b`. */
export const le: (a: ExprLike, b: ExprLike) => Expr = binary("le");
/** `a > b`. */
export const gt: (a: ExprLike, b: ExprLike) => Expr = binary("gt");
/** `a >= b`. */
export const ge: (a: ExprLike, b: ExprLike) => Expr = binary("ge");
/** `a == b`. */
export const eq: (a: ExprLike, b: ExprLike) => Expr = binary("eq");
/** `a != b`. */
export const ne: (a: ExprLike, b: ExprLike) => Expr = binary("ne");
/** `-a`. */
export const neg: (a: ExprLike) => Expr = unary("neg");
/** `|a|`. */
export const abs: (a: ExprLike) => Expr = unary("abs");
/** Hyperbolic tangent (float). */
export const tanh: (a: ExprLike) => Expr = unary("tanh");
/** Natural exponential (float). */
export const exp: (a: ExprLike) => Expr = unary("exp");
/** Natural logarithm (float). */
export const log: (a: ExprLike) => Expr = unary("log");
/** Converts an int to float. */
export const float: (a: ExprLike) => Expr = unary("float");
/** Logical negation of a bool. */
export const not: (a: Expr) => Expr = unary("not");

/**
 * Logical and of bools; with one operand returns it, with none `true` is not representable, so
 * at least one is required.
 *
 * @example
 * ```ts
 * import { and, causal, evaluate, kvIdx, ge } from "@attend/attend/core";
 * const m = and(causal(), ge(kvIdx, 2));
 * if (evaluate(m, { qIdx: 3, kvIdx: 1, qLen: 4, kvLen: 4 })) throw new Error("key 1 hidden");
 * ```
 */
export function and(first: Expr, ...rest: Expr[]): Expr {
  return rest.reduce((acc, e) => node({ op: "and", a: acc, b: e }), typeChecked(first, "and"));
}

/**
 * Logical or of bools.
 *
 * @example
 * ```ts
 * import { evaluate, eq, kvIdx, or, qIdx } from "@attend/attend/core";
 * const m = or(eq(kvIdx, 0), eq(kvIdx, qIdx));
 * if (!evaluate(m, { qIdx: 5, kvIdx: 0 })) throw new Error("global key 0 visible");
 * ```
 */
export function or(first: Expr, ...rest: Expr[]): Expr {
  return rest.reduce((acc, e) => node({ op: "or", a: acc, b: e }), typeChecked(first, "or"));
}

function typeChecked(e: Expr, role: string): Expr {
  requireType(e, "bool", `${role} operand`);
  return e;
}

/** `cond ? a : b`. */
export function select(cond: Expr, a: ExprLike, b: ExprLike): Expr {
  return node({ op: "select", cond, a: wrap(a), b: wrap(b) });
}

/**
 * A canonical string for an Expr: equal trees give equal keys (used in cache keys).
 *
 * @example
 * ```ts
 * import { exprKey, kvIdx, le, qIdx } from "@attend/attend/core";
 * if (exprKey(le(kvIdx, qIdx)) !== exprKey(le(kvIdx, qIdx))) throw new Error("keys differ");
 * ```
 */
export function exprKey(e: Expr): string {
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
    case "select":
      key = `select(${exprKey(e.cond)},${exprKey(e.a)},${exprKey(e.b)})`;
      break;
    default:
      key = "b" in e ? `${e.op}(${exprKey(e.a)},${exprKey(e.b)})` : `${e.op}(${exprKey(e.a)})`;
  }
  keys.set(e, key);
  return key;
}

/** Whether an Expr reads a variable. */
export function readsVar(e: Expr, name: VarName): boolean {
  switch (e.op) {
    case "var":
      return e.name === name;
    case "lit":
    case "headParam":
      return false;
    case "select":
      return readsVar(e.cond, name) || readsVar(e.a, name) || readsVar(e.b, name);
    default:
      return readsVar(e.a, name) || ("b" in e && readsVar(e.b, name));
  }
}

/** Replaces every `score` in `e` with `inner` (composes score modifiers). */
export function substituteScore(e: Expr, inner: Expr): Expr {
  switch (e.op) {
    case "var":
      return e.name === "score" ? inner : e;
    case "lit":
    case "headParam":
      return e;
    case "select":
      return select(
        substituteScore(e.cond, inner),
        substituteScore(e.a, inner),
        substituteScore(e.b, inner),
      );
    default:
      return "b" in e
        ? node({ op: e.op, a: substituteScore(e.a, inner), b: substituteScore(e.b, inner) })
        : node({ op: e.op, a: substituteScore(e.a, inner) });
  }
}

/** Every headParam node in an Expr, in first-seen order (for code generators). */
export function headParams(e: Expr, found: Expr[] = []): Expr[] {
  switch (e.op) {
    case "headParam":
      if (!found.some((f) => exprKey(f) === exprKey(e))) found.push(e);
      break;
    case "var":
    case "lit":
      break;
    case "select":
      headParams(e.cond, found), headParams(e.a, found), headParams(e.b, found);
      break;
    default:
      headParams(e.a, found);
      if ("b" in e) headParams(e.b, found);
  }
  return found;
}
