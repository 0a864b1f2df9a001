/**
 * The table of bad inputs, one row per misuse of a public entry point: the call, the error class,
 * and the field and value its message must name. `tests/errors_test.ts` runs every row on each
 * backend and checks that nothing changed. Every new public function lands with its rows here
 * (core entry points) or in `_bad_inputs_backend.ts` (backends and `attend`).
 * @module
 */
import {
  add,
  alibi,
  alibiSlopes,
  and,
  attention,
  type AttentionSpec,
  broadcast,
  causal,
  classifyBlocks,
  compose,
  evaluate,
  headParam,
  kernel,
  type KernelPlan,
  kvIdx,
  lit,
  lt,
  mask,
  permute,
  reshape,
  scale,
  score,
  scoreMod,
  select,
  slice,
  softcap,
  tensorDesc,
  tile,
  toWgsl,
  variable,
  window,
} from "../core/mod.ts";
import type { Backend, Tensor } from "../backends/backend.ts";

/** The errors an entry point may raise for bad input. */
export type ErrorClass = abstract new (...args: never[]) => Error;

/** What each row may use: valid tensors of the backend under test, and other instances. */
export interface Fixture {
  readonly backend: Backend;
  /** `[1, 2, 8, 8]` f32 tensors. */
  readonly q: Tensor;
  readonly k: Tensor;
  readonly v: Tensor;
  /** Causal attention over q, k, v, and its plan on `backend`. */
  readonly spec: AttentionSpec;
  readonly plan: KernelPlan;
  /** A released tensor shaped like k. */
  readonly released: Tensor;
  /** A tensor of another instance of the same backend. */
  readonly foreign: Tensor;
  /** An instance of the same backend, disposed. */
  readonly disposed: Backend;
  /**
   * Tensors of `[1, 1, 4096, 1]` and `[1, 1, n, 1]` whose probabilities need 1.5 times the
   * device's storage-binding limit (`scoreBytes`); undefined on the CPU.
   */
  readonly big?: { readonly q: Tensor; readonly kv: Tensor; readonly scoreBytes: number };
}

/** One bad input. */
export interface BadInput {
  /** The entry point, e.g. `tensorDesc()`. */
  readonly entry: string;
  /** The misuse, e.g. "shape given as a number". */
  readonly name: string;
  /** Makes the call; may return a promise. */
  readonly call: (f: Fixture) => unknown;
  readonly error: ErrorClass;
  /** Substrings the message must hold: the field, then the value (maybe from the fixture). */
  readonly field: string;
  readonly value: string | ((f: Fixture) => string);
  /** The backend the row applies to, when only one. */
  readonly only?: "cpu" | "webgpu";
}

/** A row, compactly. */
export function row(
  entry: string,
  name: string,
  call: (f: Fixture) => unknown,
  error: ErrorClass,
  field: string,
  value: string | ((f: Fixture) => string),
  only?: "cpu" | "webgpu",
): BadInput {
  return { entry, name, call, error, field, value, only };
}

const hand = (x: unknown) => x as never;
const desc = tensorDesc([1, 2, 8, 8]);

/** Bad inputs of the core: descriptors, Exprs, transforms, `attention()`. */
// deno-fmt-ignore
export const CORE_BAD_INPUTS: readonly BadInput[] = [
  // Descriptors and views.
  row("tensorDesc()", "shape given as a number", () => tensorDesc(hand(4)), TypeError, "shape must be an array", "current value is 4"),
  row("tensorDesc()", "negative shape entry", () => tensorDesc([2, -1]), RangeError, "shape[1] must be a non-negative integer", "current value is -1"),
  row("tensorDesc()", "fractional shape entry", () => tensorDesc([2, 1.5]), RangeError, "shape[1]", "current value is 1.5"),
  row("tensorDesc()", "NaN shape entry", () => tensorDesc([NaN, 2]), RangeError, "shape[0]", "current value is NaN"),
  row("tensorDesc()", "string shape entry", () => tensorDesc(hand(["2"])), TypeError, "shape[0]", 'current value is "2"'),
  row("tensorDesc()", "unknown dtype", () => tensorDesc([2], hand("f64")), TypeError, "dtype must be one of", '"f64"'),
  row("permute()", "axes not a permutation", () => permute(desc, [0, 0, 1, 2]), RangeError, "axes must be a permutation", "[0, 0, 1, 2]"),
  row("permute()", "axes a string", () => permute(desc, hand("0123")), TypeError, "axes", '"0123"'),
  row("permute()", "not a descriptor", () => permute(hand(null), [0]), TypeError, "x must be a tensor", "null"),
  row("slice()", "dim out of range", () => slice(desc, 4, 0, 1), RangeError, "dim must be an integer in 0..3", "current value is 4"),
  row("slice()", "fractional start", () => slice(desc, 0, 0.5, 1), RangeError, "start", "0.5"),
  row("reshape()", "element count changes", () => reshape(desc, [3, 5]), RangeError, "element count must stay 128", "15"),
  row("broadcast()", "rank changes", () => broadcast(desc, [1, 2, 8]), RangeError, "rank must be 4", "current value is 3"),
  // Exprs.
  row("add()", "operand neither Expr nor number", () => add(kvIdx, hand("1")), TypeError, "b must be an Expr or a number", '"1"'),
  row("lit()", "NaN", () => lit(NaN), RangeError, "value must be a finite number", "NaN"),
  row("lit()", "a string", () => lit(hand("3")), TypeError, "value must be a finite number", '"3"'),
  row("variable()", "unknown variable", () => variable(hand("foo")), TypeError, "name must be one of b, h, qIdx", '"foo"'),
  row("headParam()", "no values", () => headParam([]), RangeError, "values must be non-empty", "[]"),
  row("headParam()", "values not an array", () => headParam(hand(0.5)), TypeError, "values must be an array", "0.5"),
  row("headParam()", "a non-finite value", () => headParam([1, Infinity]), RangeError, "values[1] must be finite", "Infinity"),
  row("and()", "a float operand", () => and(causal(), hand(score)), TypeError, "operands[1] must be bool", "current type is float"),
  row("select()", "an int condition", () => select(kvIdx, 1, 2), TypeError, "cond must be bool", "current type is int"),
  row("evaluate()", "misspelt variable", () => evaluate(causal(), hand({ qidx: 1 })), TypeError, '"qidx"', 'did you mean "qIdx"?'),
  row("evaluate()", "unknown op", () => evaluate(hand({ op: "nope" }), {}), TypeError, "e.op must be one of", '"nope"'),
  row("toWgsl()", "name not an identifier", () => toWgsl("1st", causal()), RangeError, "name must be a WGSL identifier", '"1st"'),
  row("classifyBlocks()", "zero tile", () => classifyBlocks(causal(), { qLen: 4, kvLen: 4, tileQ: 0, tileKv: 4 }), RangeError, "options.tileQ", "current value is 0"),
  // Transforms.
  row("mask()", "undefined", () => mask(hand(undefined)), TypeError, "mask must be an Expr", "undefined"),
  row("mask()", "a number", () => mask(hand(42)), TypeError, "mask must be an Expr", "42"),
  row("mask()", "reads an unknown variable", () => mask(hand({ op: "var", name: "foo" })), TypeError, "mask.name must be one of", '"foo"'),
  row("mask()", "unknown variable deep in the tree", () => mask(lt(hand({ op: "var", name: "pos" }), 3)), TypeError, "a.name must be one of", '"pos"'),
  row("mask()", "a float Expr", () => mask(hand(score)), TypeError, "mask must be bool", "current type is float"),
  row("mask()", "reads score", () => mask(lt(score, 0)), TypeError, "mask must not read score", "reads score"),
  row("scoreMod()", "a string", () => scoreMod(hand("score")), TypeError, "modifier must be an Expr", '"score"'),
  row("scoreMod()", "a bool Expr", () => scoreMod(causal()), TypeError, "modifier must be numeric", "current type is bool"),
  row("scoreMod()", "misspelt variable", () => scoreMod(hand({ op: "var", name: "scores" })), TypeError, "modifier.name", '"scores"'),
  row("tile()", "undefined", () => tile(hand(undefined)), TypeError, "tile must be an object { q, kv }", "undefined"),
  row("tile()", "zero rows", () => tile({ q: 0, kv: 4 }), RangeError, "tile.q must be an integer in 1..1024", "current value is 0"),
  row("tile()", "misspelt key", () => tile(hand({ q: 16, kvv: 16 })), TypeError, '"kvv"', 'did you mean "kv"?'),
  row("kernel()", "unknown family", () => kernel(hand("paged")), TypeError, "family must be one of", '"paged"'),
  row("scale()", "a string", () => scale(hand("0.5")), TypeError, "scale must be a finite number", '"0.5"'),
  row("scale()", "infinite", () => scale(Infinity), RangeError, "scale must be a finite number", "Infinity"),
  row("softcap()", "zero cap", () => softcap(0), RangeError, "cap must be a positive finite number", "current value is 0"),
  row("alibi()", "a NaN slope, named as a slope", () => alibi([0.5, NaN]), RangeError, "slopes[1] must be a finite number", "NaN"),
  row("alibi()", "slopes for another head count", (f) => alibi(alibiSlopes(3))(f.spec), RangeError, "slopes.length must equal q heads (2)", "current value is 3"),
  row("alibiSlopes()", "zero heads", () => alibiSlopes(0), RangeError, "heads must be a positive integer", "current value is 0"),
  row("window()", "left past 32-bit positions", () => window(2 ** 32, 0), RangeError, "left must be an integer in 0..1073741824", "4294967296"),
  row("window()", "negative right", () => window(0, -1), RangeError, "right", "current value is -1"),
  row("window()", "a string bound", () => window(hand("1"), 0), TypeError, "left", '"1"'),
  row("compose()", "a non-function", () => compose(mask(causal()), hand(5)), TypeError, "transforms[1] must be a function", "5"),
  row("Transform", "applied to no spec", () => mask(causal())(hand(undefined)), TypeError, "spec must be an AttentionSpec", "undefined"),
  // attention().
  row("attention()", "v missing", (f) => attention(f.q, f.k, hand(undefined)), TypeError, "v must be a tensor or tensor descriptor", "undefined"),
  row("attention()", "null options", (f) => attention(f.q, f.k, f.v, hand(null)), TypeError, "options must be an object or undefined", "null"),
  row("attention()", "misspelt option", (f) => attention(f.q, f.k, f.v, hand({ probz: true })), TypeError, '"probz"', 'did you mean "probs"?'),
  row("attention()", "option of the wrong kind", (f) => attention(f.q, f.k, f.v, hand({ lse: "yes" })), TypeError, "options.lse must be a boolean", '"yes"'),
  row("attention()", "NaN scale", (f) => attention(f.q, f.k, f.v, { scale: NaN }), RangeError, "scale must be a finite number", "NaN"),
  row("attention()", "head dims differ", (f) => attention(f.q, tensorDesc([1, 2, 8, 4]), f.v), RangeError, "k.shape[3] must equal q head dim (8)", "current value is 4"),
  row("attention()", "rank 3", (f) => attention(tensorDesc([2, 8, 8]), f.k, f.v), RangeError, "q must have rank 4", "[2,8,8]"),
  row("attention()", "KV heads do not divide", (f) => attention(f.q, tensorDesc([1, 3, 8, 8]), tensorDesc([1, 3, 8, 8])), RangeError, "k.shape[1] (KV heads) must divide q heads (2)", "current value is 3"),
  row("attention()", "mixed dtypes", (f) => attention(f.q, f.k, tensorDesc([1, 2, 8, 8], "f16")), TypeError, "v.dtype must equal q.dtype (f32)", "f16"),
  row("attention()", "negative offset in a hand-built view", (f) => attention({ ...f.q, offset: -1 }, f.k, f.v), RangeError, "q.offset must be a non-negative integer", "-1"),
  row("attention()", "strides of another length", (f) => attention({ ...f.q, strides: [1, 1] }, f.k, f.v), RangeError, "q.strides.length must be 4", "current value is 2"),
  row("attention()", "negative stride", (f) => attention({ ...f.q, strides: [128, 64, -8, 1] }, f.k, f.v), RangeError, "q.strides[2]", "-8"),
];
