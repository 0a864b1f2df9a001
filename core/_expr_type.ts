/**
 * Structural and type checking of Expr trees, including hand-built ones: every node must have a
 * known op and well-formed fields (known variable names, finite literals, non-empty finite
 * head parameters, int tables within limits), and operand types must fit. Results are cached
 * per frozen node.
 * @module
 */
import type { Expr, ExprType } from "./expr.ts";
import { fail, show } from "./_check.ts";

/** The variables an Expr may read. */
export const VAR_NAMES = Object.freeze(["b", "h", "qIdx", "kvIdx", "qLen", "kvLen", "score"]);

const BINARY = new Set([
  "add",
  "sub",
  "mul",
  "div",
  "mod",
  "min",
  "max",
  "lt",
  "le",
  "gt",
  "ge",
  "eq",
  "ne",
  "and",
  "or",
]);
const UNARY = new Set(["neg", "abs", "not", "tanh", "exp", "log", "float"]);
const COMPARISON = new Set(["lt", "le", "gt", "ge", "eq", "ne"]);
const LOGIC = new Set(["and", "or"]);
const FLOAT_UNARY = new Set(["tanh", "exp", "log", "float"]);
const TABLE = new Set(["lookup", "searchSorted"]);
const OPS = ["var", "lit", "headParam", "select", ...TABLE, ...BINARY, ...UNARY];

/**
 * The most entries a `lookup` or `searchSorted` table holds: 32 KiB of 32-bit words, half of the
 * uniform block WebGPU guarantees (a plan's tables and literals share it).
 */
export const MAX_TABLE = 8192;
/** Table entries are positions or indices: integers in `-TABLE_RANGE..TABLE_RANGE` (2^30). */
export const TABLE_RANGE = 2 ** 30;

/** The smallest and largest 32-bit integers: integer literals outside them are floats. */
export const I32_MIN = -(2 ** 31), I32_MAX = 2 ** 31 - 1;

const types = new WeakMap<object, ExprType>();

/** Whether a checked node has two operands `a` and `b`. */
export function isBinary(e: Expr): e is Extract<Expr, { readonly b: Expr }> {
  return BINARY.has(e.op);
}

/** Freezes a node built by a builder and checks it (the builder's op names the context). */
export function node<T extends Expr>(e: T): T {
  Object.freeze(e);
  checkedType(e, `build ${e.op}`, "");
  return e;
}

const join = (path: string, key: string) => path ? `${path}.${key}` : key;

/**
 * The value type of a node, after checking its structure and its operands' types.
 *
 * @param e The value claimed to be an Expr.
 * @param context What the caller cannot do if it is not, e.g. "apply mask".
 * @param path How the caller names it, e.g. "mask"; children are named `mask.a`, `mask.cond`.
 * @throws {TypeError} For a malformed node or ill-typed operands, naming the path.
 * @throws {RangeError} For a non-finite literal or head parameter.
 */
export function checkedType(e: unknown, context: string, path: string): ExprType {
  if (typeof e !== "object" || e === null) fail("type", context, path, "an Expr", e);
  const known = types.get(e);
  if (known) return known;
  const t = infer(e as Expr, context, path);
  if (Object.isFrozen(e)) types.set(e, t);
  return t;
}

function infer(e: Expr, context: string, path: string): ExprType {
  const child = (key: "a" | "b" | "cond") =>
    checkedType((e as Record<string, unknown>)[key], context, join(path, key));
  switch (e.op) {
    case "var":
      if (!VAR_NAMES.includes(e.name)) {
        fail("type", context, join(path, "name"), `one of ${VAR_NAMES.join(", ")}`, e.name);
      }
      return e.name === "score" ? "float" : "int";
    case "lit":
      if (typeof e.value !== "number") {
        fail("type", context, join(path, "value"), "a number", e.value);
      }
      if (!Number.isFinite(e.value)) {
        fail("range", context, join(path, "value"), "finite", e.value);
      }
      return Number.isInteger(e.value) && e.value >= I32_MIN && e.value <= I32_MAX
        ? "int"
        : "float";
    case "headParam":
      checkHeadParam(e.values, context, join(path, "values"));
      return "float";
    case "lookup":
    case "searchSorted":
      checkTable(e.op, e.values, context, join(path, "values"));
      expect(child("a"), "int", context, join(path, "a"));
      return "int";
    case "select": {
      expect(child("cond"), "bool", context, join(path, "cond"));
      const [ta, tb] = [child("a"), child("b")];
      if ((ta === "bool") !== (tb === "bool")) {
        throw new TypeError(
          `Cannot ${context}: ${
            path || "select"
          } branches must both be bool or both numeric, current types are ${ta} and ${tb}`,
        );
      }
      return ta === "bool" ? "bool" : promote(ta, tb);
    }
  }
  if (BINARY.has(e.op)) {
    const [ta, tb] = [child("a"), child("b")];
    if (LOGIC.has(e.op)) {
      expect(ta, "bool", context, join(path, "a"));
      expect(tb, "bool", context, join(path, "b"));
      return "bool";
    }
    expect(ta, "numeric", context, join(path, "a"));
    expect(tb, "numeric", context, join(path, "b"));
    return COMPARISON.has(e.op) ? "bool" : promote(ta, tb);
  }
  if (UNARY.has(e.op)) {
    if ("b" in e) fail("type", context, join(path, "b"), `absent for op ${e.op}`, e.b);
    const ta = child("a");
    if (e.op === "not") return expect(ta, "bool", context, join(path, "a")), "bool";
    expect(ta, "numeric", context, join(path, "a"));
    return FLOAT_UNARY.has(e.op) ? "float" : ta;
  }
  return fail("type", context, join(path, "op"), `one of ${OPS.join(", ")}`, (e as Expr).op);
}

function promote(a: ExprType, b: ExprType): ExprType {
  return a === "int" && b === "int" ? "int" : "float";
}

/** Checks a type: `"numeric"` accepts int and float. */
export function expect(
  t: ExprType,
  want: ExprType | "numeric",
  context: string,
  path: string,
): void {
  if (want === "numeric" ? t === "bool" : t !== want) {
    throw new TypeError(`Cannot ${context}: ${path} must be ${want}, current type is ${t}`);
  }
}

/** Checks the values of a head parameter: a non-empty array of finite numbers. */
export function checkHeadParam(values: unknown, context: string, path: string): void {
  if (!Array.isArray(values)) fail("type", context, path, "an array of numbers", values);
  if (values.length === 0) fail("range", context, path, "non-empty", values);
  values.forEach((v, i) => {
    if (typeof v !== "number" || !Number.isFinite(v)) {
      fail(typeof v === "number" ? "range" : "type", context, `${path}[${i}]`, "finite", v);
    }
  });
}

/**
 * Checks a table: a non-empty array of at most `MAX_TABLE` integers within `TABLE_RANGE`,
 * non-decreasing for `searchSorted`.
 */
export function checkTable(op: string, values: unknown, context: string, path: string): void {
  if (!Array.isArray(values)) fail("type", context, path, "an array of integers", values);
  if (values.length === 0) fail("range", context, path, "non-empty", values);
  if (values.length > MAX_TABLE) {
    fail("range", context, `${path}.length`, `at most ${MAX_TABLE}`, values.length);
  }
  values.forEach((v, i) => {
    const want = `an integer in ${-TABLE_RANGE}..${TABLE_RANGE}`;
    if (typeof v !== "number") fail("type", context, `${path}[${i}]`, want, v);
    if (!Number.isInteger(v) || Math.abs(v) > TABLE_RANGE) {
      fail("range", context, `${path}[${i}]`, want, v);
    }
    if (op === "searchSorted" && i > 0 && v < values[i - 1]) {
      fail("range", context, `${path}[${i}]`, `at least ${path}[${i - 1}] (${values[i - 1]})`, v);
    }
  });
}

/** Names a value that is not an Expr nor a number, for builders' operand errors. */
export function notOperand(context: string, field: string, value: unknown): never {
  throw new TypeError(
    `Cannot ${context}: ${field} must be an Expr or a number, current value is ${show(value)}`,
  );
}
