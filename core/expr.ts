/**
 * Expression trees for masks and score modifiers, over the variables `b`, `h`, `qIdx`, `kvIdx`,
 * `qLen`, `kvLen` and (in score modifiers) `score`. Exprs are frozen data, never closures, so one
 * tree has three interpretations: `evaluate` (CPU), `toWgsl` (kernel source) and
 * `classifyBlocks` (tile-level interval bounds). Equal trees have equal `exprKey`s.
 *
 * Types: index variables, integer literals within the 32-bit range and table reads (`lookup`,
 * `searchSorted`) are `int` (32-bit, division truncates), `score`, other literals and `headParam`
 * are `float`, comparisons and logic are `bool`. Mixing int and float promotes to float. Every builder checks its operands
 * (Exprs or numbers) and their types, naming the operand.
 * @module
 */
import { assertFinite, fail } from "./_check.ts";
import {
  checkedType,
  checkHeadParam,
  checkTable,
  expect,
  node,
  notOperand,
  VAR_NAMES,
} from "./_expr_type.ts";

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
/**
 * Table operators over a constant int list and an int operand: `lookup` reads `values[a]` (0
 * outside the list), `searchSorted` counts the entries `<= a` of a non-decreasing list.
 */
export type TableOp = "lookup" | "searchSorted";
/** The value type of an Expr. */
export type ExprType = "int" | "float" | "bool";

/** An expression tree node. */
export type Expr =
  | { readonly op: "var"; readonly name: VarName }
  | { readonly op: "lit"; readonly value: number }
  | { readonly op: "headParam"; readonly values: readonly number[] }
  | { readonly op: TableOp; readonly values: readonly number[]; readonly a: Expr }
  | { readonly op: BinaryOp; readonly a: Expr; readonly b: Expr }
  | { readonly op: UnaryOp; readonly a: Expr }
  | { readonly op: "select"; readonly cond: Expr; readonly a: Expr; readonly b: Expr };

/** Operands of numbers are wrapped as literals. */
export type ExprLike = Expr | number;

/** The value type of an Expr (checked and computed once per frozen node). */
export function typeOf(e: Expr): ExprType {
  return checkedType(e, "use expression", "expression");
}

function wrap(x: ExprLike, op: string, field: string): Expr {
  if (typeof x === "number") return lit(x);
  if (typeof x !== "object" || x === null) notOperand(`build ${op}`, field, x);
  return x;
}

/**
 * A numeric literal.
 *
 * @param value A finite number; integers in the 32-bit range are `int`, others `float`.
 * @returns The literal node.
 * @throws {TypeError} If `value` is not a number.
 * @throws {RangeError} If `value` is not finite.
 * @example
 * ```ts
 * import { evaluate, lit } from "@attend/attend/core";
 * if (evaluate(lit(3), {}) !== 3) throw new Error("expected 3");
 * ```
 */
export function lit(value: number): Expr {
  assertFinite(value, "create literal", "value");
  return node({ op: "lit", value: Object.is(value, -0) ? 0 : value });
}

/**
 * Reads a variable: one of `b`, `h`, `qIdx`, `kvIdx`, `qLen`, `kvLen`, `score`.
 *
 * @param name The variable.
 * @returns The node.
 * @throws {TypeError} If `name` is not a known variable.
 * @example
 * ```ts
 * import { evaluate, variable } from "@attend/attend/core";
 * if (evaluate(variable("kvLen"), { kvLen: 7 }) !== 7) throw new Error("expected 7");
 * ```
 */
export function variable(name: VarName): Expr {
  if (!VAR_NAMES.includes(name)) {
    fail("type", "create variable", "name", `one of ${VAR_NAMES.join(", ")}`, name);
  }
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
 * @throws {TypeError} If `values` is not an array of numbers.
 * @throws {RangeError} If `values` is empty or holds a non-finite number. `lower()` refuses a
 * spec whose head parameters do not hold exactly one value per query head.
 * @example
 * ```ts
 * import { evaluate, headParam } from "@attend/attend/core";
 * if (evaluate(headParam([0.5, 0.25]), { h: 1 }) !== 0.25) throw new Error("expected 0.25");
 * ```
 */
export function headParam(values: readonly number[]): Expr {
  checkHeadParam(values, "create headParam", "values");
  return node({ op: "headParam", values: Object.freeze([...values]) });
}

/**
 * Reads a constant int table: `values[index]`, and 0 where `index` is outside the list (masks use
 * it for data such as tile matrices, per-batch lengths and seeded random blocks). Kernels receive
 * the values in their uniform block, so tables of equal length share one pipeline; a plan's
 * literals and tables together must fit the device's uniform binding (64 KiB by default).
 *
 * @param values Integers in -2^30..2^30, at most 8192 of them.
 * @param index An int Expr.
 * @returns An int node.
 * @throws {TypeError} If `values` is not an array of numbers or `index` not an int Expr.
 * @throws {RangeError} If `values` is empty, too long, or holds a value that is not an integer
 * in range.
 * @example
 * ```ts
 * import { evaluate, kvIdx, lookup } from "@attend/attend/core";
 * const t = lookup([5, 7, 9], kvIdx);
 * if (evaluate(t, { kvIdx: 1 }) !== 7 || evaluate(t, { kvIdx: 3 }) !== 0) throw new Error("read");
 * ```
 */
export function lookup(values: readonly number[], index: ExprLike): Expr {
  return table("lookup", values, index, "index");
}

/**
 * Counts the entries of a non-decreasing int list that are `<= x` (the insertion point after
 * equal entries, as `torch.searchsorted(…, right=True)`): the segment `x` falls in, given the
 * segments' ends. Monotone in `x`, so tile classification bounds it exactly; kernels run a binary
 * search over values in their uniform block (limits as for `lookup`).
 *
 * @param sorted Non-decreasing integers in -2^30..2^30, at most 8192 of them.
 * @param x An int Expr.
 * @returns An int node in `0..sorted.length`.
 * @throws {TypeError} If `sorted` is not an array of numbers or `x` not an int Expr.
 * @throws {RangeError} If `sorted` is empty, too long, decreasing somewhere, or holds a value
 * that is not an integer in range.
 * @example
 * ```ts
 * import { evaluate, kvIdx, searchSorted } from "@attend/attend/core";
 * // Documents of lengths 3 and 2 end at 3 and 5: key 4 lies in document 1.
 * if (evaluate(searchSorted([3, 5], kvIdx), { kvIdx: 4 }) !== 1) throw new Error("document 1");
 * ```
 */
export function searchSorted(sorted: readonly number[], x: ExprLike): Expr {
  return table("searchSorted", sorted, x, "x");
}

function table(op: TableOp, values: readonly number[], operand: ExprLike, field: string): Expr {
  const context = `build ${op}`;
  checkTable(op, values, context, op === "lookup" ? "values" : "sorted");
  const a = wrap(operand, op, field);
  expect(checkedType(a, context, field), "int", context, field);
  return node({ op, values: Object.freeze([...values]), a });
}

function binary(op: BinaryOp): (a: ExprLike, b: ExprLike) => Expr {
  return (a, b) => node({ op, a: wrap(a, op, "a"), b: wrap(b, op, "b") });
}

function unary(op: UnaryOp): (a: ExprLike) => Expr {
  return (a) => node({ op, a: wrap(a, op, "a") });
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
 * @param first A bool Expr.
 * @param rest More bool Exprs.
 * @returns Their conjunction.
 * @throws {TypeError} If an operand is not a bool Expr, naming it (`operands[1]`).
 * @example
 * ```ts
 * import { and, causal, evaluate, kvIdx, ge } from "@attend/attend/core";
 * const m = and(causal(), ge(kvIdx, 2));
 * if (evaluate(m, { qIdx: 3, kvIdx: 1, qLen: 4, kvLen: 4 })) throw new Error("key 1 hidden");
 * ```
 */
export function and(first: Expr, ...rest: Expr[]): Expr {
  return logic("and", [first, ...rest]);
}

/**
 * Logical or of bools.
 *
 * @param first A bool Expr.
 * @param rest More bool Exprs.
 * @returns Their disjunction.
 * @throws {TypeError} If an operand is not a bool Expr, naming it (`operands[1]`).
 * @example
 * ```ts
 * import { evaluate, eq, kvIdx, or, qIdx } from "@attend/attend/core";
 * const m = or(eq(kvIdx, 0), eq(kvIdx, qIdx));
 * if (!evaluate(m, { qIdx: 5, kvIdx: 0 })) throw new Error("global key 0 visible");
 * ```
 */
export function or(first: Expr, ...rest: Expr[]): Expr {
  return logic("or", [first, ...rest]);
}

function logic(op: "and" | "or", operands: Expr[]): Expr {
  operands.forEach((e, i) =>
    expect(checkedType(e, `build ${op}`, `operands[${i}]`), "bool", `build ${op}`, `operands[${i}]`)
  );
  return operands.reduce((acc, e) => node({ op, a: acc, b: e }));
}

/**
 * `cond ? a : b`.
 *
 * @param cond A bool Expr.
 * @param a The value where `cond` holds.
 * @param b The value elsewhere; both bool or both numeric.
 * @returns The node.
 * @throws {TypeError} If `cond` is not bool or the branches' types differ.
 * @example
 * ```ts
 * import { evaluate, kvIdx, lt, select } from "@attend/attend/core";
 * if (evaluate(select(lt(kvIdx, 2), 1, 5), { kvIdx: 3 }) !== 5) throw new Error("expected 5");
 * ```
 */
export function select(cond: Expr, a: ExprLike, b: ExprLike): Expr {
  return node({ op: "select", cond, a: wrap(a, "select", "a"), b: wrap(b, "select", "b") });
}
