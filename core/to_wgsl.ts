/**
 * The WGSL interpretation of Exprs: a function body for kernel templates. Variables become the
 * parameters `b, h, q_idx, kv_idx, q_len, kv_len` (i32) and `score` (f32). Float `min`, `max`
 * and `tanh` go through small helpers that pass NaN on, as the CPU's `Math` functions do (WGSL's
 * own may drop it).
 * Tables (`lookup`, `searchSorted`) become one helper function each; with a literal table their
 * values travel in the uniform block too, so equal-length tables share a pipeline.
 * @module
 */
import { type Expr, typeOf, type VarName } from "./expr.ts";
import { assertExpr, exprKey, headParams } from "./expr_tree.ts";
import { isBinary } from "./_expr_type.ts";
import { assertArray, assertObject, fail } from "./_check.ts";

const VAR_NAMES: Record<VarName, string> = {
  b: "b",
  h: "h",
  qIdx: "q_idx",
  kvIdx: "kv_idx",
  qLen: "q_len",
  kvLen: "kv_len",
  score: "score",
};

const INFIX: Record<string, string> = {
  add: "+",
  sub: "-",
  mul: "*",
  div: "/",
  mod: "%",
  lt: "<",
  le: "<=",
  gt: ">",
  ge: ">=",
  eq: "==",
  ne: "!=",
  and: "&&",
  or: "||",
};

function floatLiteral(value: number): string {
  const text = String(value);
  return /[.e]/.test(text) ? `${text}f` : `${text}.0f`;
}

/**
 * Literal values lifted out of generated WGSL into a uniform block, so Exprs that differ only in
 * constants (window sizes, caps, slopes) share one shader and one pipeline.
 */
export interface LiteralTable {
  /** Values in emission order; ints as i32 bits, floats as f32 bits. */
  readonly values: number[];
  /** `"i"` or `"f"` per value. */
  readonly kinds: ("i" | "f")[];
}

/**
 * The uniform words of a literal table (i32 or f32 bit patterns).
 *
 * @param table The table `toWgsl` filled.
 * @returns Its values, padded to whole `vec4`s.
 * @throws {TypeError} If `table` is not a literal table.
 * @example
 * ```ts
 * import { literalWords, toWgsl, window } from "@attend/attend/core";
 * const table = { values: [], kinds: [] };
 * toWgsl("mask_mod", window(3, 1), table);
 * if (literalWords(table)[0] !== 3) throw new Error("left bound first");
 * ```
 */
export function literalWords(table: LiteralTable): Uint32Array {
  assertTable(table, "pack literals");
  const words = new Uint32Array(Math.max(4, Math.ceil(table.values.length / 4) * 4));
  const f32 = new Float32Array(words.buffer), i32 = new Int32Array(words.buffer);
  table.values.forEach((v, i) => table.kinds[i] === "i" ? i32[i] = v : f32[i] = v);
  return words;
}

function lifted(table: LiteralTable, value: number, kind: "i" | "f"): string {
  const index = table.values.length;
  table.values.push(value);
  table.kinds.push(kind);
  return `bitcast<${kind === "i" ? "i32" : "f32"}>(lits[${index >> 2}].${"xyzw"[index & 3]})`;
}

function assertTable(table: unknown, context: string): asserts table is LiteralTable {
  assertObject(table, context, "table", "a literal table { values, kinds }");
  assertArray(table.values, context, "table.values");
  assertArray(table.kinds, context, "table.kinds");
}

/**
 * Helpers a function's float `min`, `max`, `tanh` and int `mod` need, keyed by op; filled during
 * emission.
 */
let helpers: Set<string> = new Set();

function helper(op: "min" | "max" | "tanh" | "rem", args: string): string {
  helpers.add(op);
  return `${activeName}_${op}(${args})`;
}

function helperSource(name: string, op: string): string {
  const nan = (x: string) => `((bitcast<u32>(${x}) & 0x7fffffffu) > 0x7f800000u)`;
  // i32 `%` of a negative dividend comes out as the unsigned remainder on Mesa's llvmpipe
  // (-1 % 3 == 0); truncated division is right there, so the remainder is rebuilt from it.
  if (op === "rem") {
    return `fn ${name}_rem(a: i32, b: i32) -> i32 { return select(a - b * (a / b), 0i, b == 0i); }\n`;
  }
  // tanh is clamped: some drivers overflow exp() inside tanh for large inputs.
  return op === "tanh"
    ? `fn ${name}_tanh(x: f32) -> f32 { return select(tanh(clamp(x, -15.0f, 15.0f)), x, ${
      nan("x")
    }); }\n`
    : `fn ${name}_${op}(a: f32, b: f32) -> f32 { return select(${op}(a, b), a + b, ${nan("a")} || ${
      nan("b")
    }); }\n`;
}

/** Table helpers of the function being emitted: name by op and content, and their sources. */
let tables: Map<string, string> = new Map();
let tableSources: string[] = [];

/**
 * A helper reading one table, emitted once per distinct table. With a literal table its values go
 * to the uniform block, so only the length and offset reach the source; otherwise they are a
 * local array.
 */
function tableFunction(op: "lookup" | "searchSorted", values: readonly number[]): string {
  const key = `${op}[${values.join(",")}]`;
  const known = tables.get(key);
  if (known) return known;
  const name = `${activeName}_${op === "lookup" ? "lookup" : "search"}_${tables.size}`;
  tables.set(key, name);
  const n = values.length;
  let local = "", read: (i: string) => string;
  if (activeTable) {
    const base = activeTable.values.length;
    for (const v of values) activeTable.values.push(v), activeTable.kinds.push("i");
    read = (i) => `bitcast<i32>(lits[(${base}u + u32(${i})) >> 2u][(${base}u + u32(${i})) & 3u])`;
  } else {
    local = `  var table = array<i32, ${n}>(${values.map((v) => `${v}i`).join(", ")});
`;
    read = (i) => `table[${i}]`;
  }
  tableSources.push(
    op === "lookup"
      ? `fn ${name}(i: i32) -> i32 {
${local}  if (i < 0i || i >= ${n}i) { return 0i; }
  return ${read("i")};
}
`
      : `fn ${name}(x: i32) -> i32 {
${local}  var lo = 0i;
  var hi = ${n}i;
  while (lo < hi) {
    let mid = (lo + hi) / 2i;
    if (${read("mid")} <= x) { lo = mid + 1i; } else { hi = mid; }
  }
  return lo;
}
`,
  );
  return name;
}

function asFloat(e: Expr, params: Map<string, string>): string {
  const text = emit(e, params);
  return typeOf(e) === "int" ? `f32(${text})` : text;
}

function emit(e: Expr, params: Map<string, string>): string {
  switch (e.op) {
    case "var":
      return VAR_NAMES[e.name];
    case "lit":
      if (activeTable) return lifted(activeTable, e.value, typeOf(e) === "int" ? "i" : "f");
      return typeOf(e) === "int" ? `(${e.value}i)` : `(${floatLiteral(e.value)})`;
    case "headParam":
      if (activeTable) {
        const base = activeTable.values.length;
        e.values.forEach((v) => activeTable!.values.push(v) && activeTable!.kinds.push("f"));
        return `bitcast<f32>(lits[(${base}u + u32(h)) >> 2u][(${base}u + u32(h)) & 3u])`;
      }
      return `${params.get(exprKey(e))}[h]`;
    case "lookup":
    case "searchSorted":
      return `${tableFunction(e.op, e.values)}(${emit(e.a, params)})`;
    case "select": {
      const float = typeOf(e) === "float";
      const branch = (x: Expr) => float ? asFloat(x, params) : emit(x, params);
      return `select(${branch(e.b)}, ${branch(e.a)}, ${emit(e.cond, params)})`;
    }
  }
  if (!isBinary(e)) {
    const a = emit(e.a, params);
    switch (e.op) {
      case "neg":
        return `(-${a})`;
      case "not":
        return `(!${a})`;
      case "tanh":
        return helper("tanh", asFloat(e.a, params));
      case "float":
        return asFloat(e.a, params);
      default:
        return `${e.op}(${typeOf(e) === "float" ? asFloat(e.a, params) : a})`;
    }
  }
  const operandsFloat = typeOf(e.a) === "float" || typeOf(e.b) === "float";
  const operand = (x: Expr) => operandsFloat ? asFloat(x, params) : emit(x, params);
  if (e.op === "min" || e.op === "max") {
    const args = `${operand(e.a)}, ${operand(e.b)}`;
    return operandsFloat ? helper(e.op, args) : `${e.op}(${args})`;
  }
  if (e.op === "div" && !operandsFloat) { // WGSL i32 division by zero already yields `a`
    return `(${operand(e.a)} / ${operand(e.b)})`;
  }
  if (e.op === "mod" && !operandsFloat) return helper("rem", `${operand(e.a)}, ${operand(e.b)}`);
  return `(${operand(e.a)} ${INFIX[e.op]} ${operand(e.b)})`;
}

/**
 * Emits a WGSL function computing an Expr.
 *
 * @param name The function's name, e.g. `mask_mod`.
 * @param e The expression.
 * @param table When given, literals and head parameters are read from a uniform `lits` block
 *   (declared by the caller) and their values appended to the table, in emission order.
 * @returns `fn name(b: i32, h: i32, q_idx: i32, kv_idx: i32, q_len: i32, kv_len: i32, score: f32) -> T`
 *   where `T` is `bool` for bool Exprs and `f32` otherwise, preceded by the helpers it calls
 *   (named `name_min`, `name_max`, `name_tanh`, and `name_lookup_N` / `name_search_N` per
 *   distinct table).
 * @throws {TypeError} If `e` is not a well-formed Expr or `table` not a literal table.
 * @throws {RangeError} If `name` is not a WGSL identifier.
 * @example
 * ```ts
 * import { causal, toWgsl } from "@attend/attend/core";
 * const src = toWgsl("mask_mod", causal());
 * if (!src.includes("fn mask_mod(") || !src.includes("-> bool")) throw new Error("bad source");
 * ```
 */
export function toWgsl(name: string, e: Expr, table?: LiteralTable): string {
  if (typeof name !== "string") fail("type", "generate WGSL", "name", "a string", name);
  if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(name)) {
    fail("range", "generate WGSL", "name", "a WGSL identifier", name);
  }
  assertExpr(e, "generate WGSL", "e");
  if (table !== undefined) assertTable(table, "generate WGSL");
  activeTable = table,
    activeName = name,
    helpers = new Set(),
    tables = new Map(),
    tableSources = [];
  try {
    return emitFunction(name, e);
  } finally {
    activeTable = undefined;
  }
}

let activeTable: LiteralTable | undefined;
let activeName = "";

function emitFunction(name: string, e: Expr): string {
  const params = new Map<string, string>();
  const locals = (activeTable ? [] : headParams(e)).map((p, i) => {
    if (p.op !== "headParam") return "";
    const local = `param_${i}`;
    params.set(exprKey(p), local);
    return `  var ${local} = array<f32, ${p.values.length}>(${
      p.values.map(floatLiteral).join(", ")
    });\n`;
  }).join("");
  const returns = typeOf(e) === "bool" ? "bool" : "f32";
  const value = returns === "f32" ? asFloat(e, params) : emit(e, params);
  return `${[...helpers].map((op) => helperSource(name, op)).join("")}${
    tableSources.join("")
  }fn ${name}(b: i32, h: i32, q_idx: i32, kv_idx: i32, q_len: i32, kv_len: i32, score: f32) -> ${returns} {
${locals}  _ = b; _ = h; _ = q_idx; _ = kv_idx; _ = q_len; _ = kv_len; _ = score;
  return ${value};
}
`;
}
