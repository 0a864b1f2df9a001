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
  assertPlan,
  attention,
  type AttentionSpec,
  broadcast,
  causal,
  classifyBlocks,
  compileInterval,
  compose,
  evaluate,
  explainBackward,
  headParam,
  kernel,
  type KernelPlan,
  kvIdx,
  linearStateShape,
  lit,
  lookup,
  lower,
  lt,
  mask,
  page,
  performerMatrix,
  permute,
  planLayout,
  qIdx,
  reshape,
  scale,
  score,
  scoreMod,
  searchSorted,
  select,
  sinkLogits,
  slice,
  softcap,
  tensorDesc,
  tile,
  tileLists,
  tileListsBytes,
  toWgsl,
  UnsupportedSpecError,
  variable,
  window,
} from "../core/mod.ts";
import {
  bigBird,
  blockMask,
  dilatedWindow,
  documents,
  fixedPattern,
  globalTokens,
  hierarchical,
  linear,
  lowRank,
  performer,
  prefixLM,
  sinks,
  slidingWindow,
  strided,
} from "../variants/mod.ts";
import { cpuCaps } from "../backends/cpu/mod.ts";
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
const pagedTwice = () => {
  const pool = tensorDesc([4, 8, 2, 8]);
  return page({ k: pool, v: pool })(page({ k: pool, v: pool })(attention(desc, desc, desc)));
};

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
  row("lookup()", "values not an array", () => lookup(hand(3), kvIdx), TypeError, "values must be an array of integers", "current value is 3"),
  row("lookup()", "a fractional value", () => lookup([1, 2.5], kvIdx), RangeError, "values[1] must be an integer in", "2.5"),
  row("lookup()", "a float index", () => lookup([1], score), TypeError, "index must be int", "current type is float"),
  row("searchSorted()", "decreasing values", () => searchSorted([4, 2], kvIdx), RangeError, "sorted[1] must be at least sorted[0] (4)", "current value is 2"),
  row("searchSorted()", "no values", () => searchSorted([], kvIdx), RangeError, "sorted must be non-empty", "[]"),
  row("toWgsl()", "name not an identifier", () => toWgsl("1st", causal()), RangeError, "name must be a WGSL identifier", '"1st"'),
  row("tileLists()", "negative query length", () => tileLists(causal(), { qLen: -1, kvLen: 4, tileQ: 2, tileKv: 2 }), RangeError, "options.qLen must be a non-negative integer", "current value is -1"),
  row("tileLists()", "mask that is not an Expr", () => tileLists(hand(5), { qLen: 4, kvLen: 4, tileQ: 2, tileKv: 2 }), TypeError, "Cannot list tiles: mask must be an Expr", "current value is 5"),
  row("tileLists()", "misspelt option", () => tileLists(causal(), hand({ qLen: 4, kvLen: 4, tileQ: 2, tilekv: 2 })), TypeError, "options key must be one of", '"tilekv" (did you mean "tileKv"?)'),
  row("tileListsBytes()", "object without typed arrays", () => tileListsBytes(hand({})), TypeError, "lists.unitRow must be a typed array", "current value is undefined"),
  row("compileInterval()", "string instead of an Expr", () => compileInterval(hand("x")), TypeError, "e must be an Expr", '"x"'),
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
  row("kernel()", "unknown family", () => kernel(hand("sparse")), TypeError, "family must be one of", '"sparse"'),
  row("scale()", "a string", () => scale(hand("0.5")), TypeError, "scale must be a finite number", '"0.5"'),
  row("scale()", "infinite", () => scale(Infinity), RangeError, "scale must be a finite number", "Infinity"),
  row("softcap()", "zero cap", () => softcap(0), RangeError, "cap must be a positive finite number", "current value is 0"),
  row("sinkLogits()", "logits given as a number", () => sinkLogits(hand(1)), TypeError, "sinkLogits must be an array of numbers", "current value is 1"),
  row("sinkLogits()", "no logits", () => sinkLogits([]), RangeError, "sinkLogits.length must be at least 1", "current value is 0"),
  row("sinkLogits()", "a NaN logit, named by index", () => sinkLogits([0, NaN]), RangeError, "sinkLogits[1] must be finite", "NaN"),
  row("sinkLogits()", "a logit given as a string", () => sinkLogits(hand(["1"])), TypeError, "sinkLogits[0] must be a number", '"1"'),
  row("alibi()", "a NaN slope, named as a slope", () => alibi([0.5, NaN]), RangeError, "slopes[1] must be a finite number", "NaN"),
  row("alibi()", "slopes for another head count", (f) => alibi(alibiSlopes(3))(f.spec), RangeError, "slopes.length must equal q heads (2)", "current value is 3"),
  row("alibiSlopes()", "zero heads", () => alibiSlopes(0), RangeError, "heads must be a positive integer", "current value is 0"),
  row("window()", "left past 32-bit positions", () => window(2 ** 32, 0), RangeError, "left must be an integer in 0..1073741824", "4294967296"),
  row("window()", "negative right", () => window(0, -1), RangeError, "right", "current value is -1"),
  row("window()", "a string bound", () => window(hand("1"), 0), TypeError, "left", '"1"'),
  row("compose()", "a non-function", () => compose(mask(causal()), hand(5)), TypeError, "transforms[1] must be a function", "5"),
  row("Transform", "applied to no spec", () => mask(causal())(hand(undefined)), TypeError, "spec must be an AttentionSpec", "undefined"),
  // Named masks (variants/).
  row("slidingWindow()", "zero size", () => slidingWindow(0), RangeError, "size must be an integer in 1..1073741824", "current value is 0"),
  row("slidingWindow()", "a string size", () => slidingWindow(hand("4")), TypeError, "size", '"4"'),
  row("slidingWindow()", "a per-head size past 2^24", () => slidingWindow([4, 2 ** 25]), RangeError, "size[1] must be an integer in 1..16777216", "33554432"),
  row("slidingWindow()", "no per-head sizes", () => slidingWindow([]), RangeError, "size must be non-empty", "[]"),
  row("dilatedWindow()", "misspelt key", () => dilatedWindow(hand({ size: 2, dilations: 2 })), TypeError, '"dilations"', 'did you mean "dilation"?'),
  row("dilatedWindow()", "zero dilation", () => dilatedWindow({ size: 2, dilation: 0 }), RangeError, "options.dilation must be an integer in 1..", "current value is 0"),
  row("dilatedWindow()", "per-head lists of different lengths", () => dilatedWindow({ size: [1, 2], dilation: [1] }), RangeError, "options.dilation.length", "current value is 1"),
  row("dilatedWindow()", "not an object", () => dilatedWindow(hand(3)), TypeError, "options must be an object { size, dilation }", "current value is 3"),
  row("fixedPattern()", "summary past the block", () => fixedPattern({ block: 4, summary: 5 }), RangeError, "options.summary must be at most block (4)", "current value is 5"),
  row("fixedPattern()", "zero block", () => fixedPattern({ block: 0, summary: 0 }), RangeError, "options.block", "current value is 0"),
  row("strided()", "zero stride", () => strided({ local: 2, stride: 0 }), RangeError, "options.stride must be an integer in 1..", "current value is 0"),
  row("strided()", "a string local", () => strided(hand({ local: "2", stride: 2 })), TypeError, "options.local", '"2"'),
  row("globalTokens()", "a negative position", () => globalTokens([0, -1]), RangeError, "positions[1] must be an integer in 0..", "current value is -1"),
  row("globalTokens()", "not an array", () => globalTokens(hand(0)), TypeError, "positions must be an array of integers", "current value is 0"),
  row("bigBird()", "missing seed", () => bigBird(hand({ window: 1, globals: 1, randomBlocks: 1, block: 4, length: 64 })), TypeError, "options.seed", "current value is undefined"),
  row("bigBird()", "misspelt key", () => bigBird(hand({ window: 1, global: 1, randomBlocks: 1, block: 4, seed: 0, length: 64 })), TypeError, '"global"', 'did you mean "globals"?'),
  row("bigBird()", "zero block", () => bigBird({ window: 1, globals: 1, randomBlocks: 1, block: 0, seed: 0, length: 64 }), RangeError, "options.block", "current value is 0"),
  row("prefixLM()", "a negative length", () => prefixLM(-2), RangeError, "prefixLength must be an integer in 0..", "current value is -2"),
  row("documents()", "a zero length", () => documents([4, 0]), RangeError, "lengths[1] must be an integer in 1..", "current value is 0"),
  row("documents()", "an empty list of a batch element", () => documents([[4], []]), RangeError, "lengths[1] must be non-empty", "[]"),
  row("documents()", "not an array", () => documents(hand("4,4")), TypeError, "lengths must be an array", '"4,4"'),
  row("sinks()", "a fractional count", () => sinks(1.5), RangeError, "count must be an integer in 0..", "current value is 1.5"),
  row("blockMask()", "ragged rows", () => blockMask([[true, false], [true]], { tileQ: 2, tileKv: 2 }), RangeError, "tiles[1].length must be 2, as tiles[0]", "current value is 1"),
  row("blockMask()", "a number for a tile", () => blockMask([[hand(1)]], { tileQ: 2, tileKv: 2 }), TypeError, "tiles[0][0] must be a boolean", "current value is 1"),
  row("blockMask()", "zero tile rows", () => blockMask([[true]], { tileQ: 0, tileKv: 2 }), RangeError, "options.tileQ", "current value is 0"),
  row("blockMask()", "misspelt option", () => blockMask([[true]], hand({ tileQ: 2, tilekv: 2 })), TypeError, '"tilekv"', 'did you mean "tileKv"?'),
  row("hierarchical()", "stride past the block", () => hierarchical({ window: 4, block: 4, stride: 5 }), RangeError, "hierarchy.stride must be an integer in 1..4", "current value is 5"),
  row("hierarchical()", "topK past 64", () => hierarchical({ window: 4, block: 4, topK: 65 }), RangeError, "hierarchy.topK must be an integer in 0..64", "current value is 65"),
  row("hierarchical()", "misspelt key", () => hierarchical(hand({ window: 4, block: 4, topk: 2 })), TypeError, '"topk"', 'did you mean "topK"?'),
  row("hierarchical()", "a weight of the wrong kind", () => hierarchical(hand({ window: 4, block: 4, weights: { window: "1" } })), TypeError, "options.weights.window must be a number or an array of numbers", '"1"'),
  row("hierarchical()", "weights for another head count", (f) => hierarchical({ window: 4, block: 4, weights: { selected: [1, 2, 3] } })(f.spec), RangeError, "hierarchy.weights.selected.length must be q heads (2)", "current value is 3"),
  row("hierarchical()", "gates of another shape", (f) => hierarchical({ window: 4, block: 4, gates: tensorDesc([1, 2, 7, 3]) })(f.spec), RangeError, "hierarchy.gates.shape must be [1,2,8,3]", "current value is [1, 2, 7, 3]"),
  row("hierarchical()", "weights and gates", () => hierarchical({ window: 4, block: 4, weights: {}, gates: tensorDesc([1, 2, 8, 3]) }), TypeError, "options must be given weights or gates, not both", "keys window, block, weights, gates"),
  row("explainBackward()", "not a plan", () => explainBackward(hand(null)), TypeError, "plan must be a KernelPlan from lower()", "null"),
  row("explainBackward()", "a plan without sizes", () => explainBackward(hand({ family: "flash" })), TypeError, "plan.sizes must be a KernelPlan from lower()", "undefined"),
  row("explainBackward()", "a paged plan", (f) => explainBackward(lower(page({ k: tensorDesc([2, 8, 2, 8]), v: tensorDesc([2, 8, 2, 8]) })(f.spec), cpuCaps)), UnsupportedSpecError, "backward of family is unsupported", "paged"),
  row("lower()", "a mask with hierarchical()", (f) => lower(hierarchical({ window: 4, block: 4 })(f.spec), cpuCaps), UnsupportedSpecError, "mask with hierarchical() is unsupported", "a mask"),
  row("planLayout()", "a hierarchical plan", () => planLayout(lower(hierarchical({ window: 4, block: 4 })(attention(tensorDesc([1, 2, 8, 8]), tensorDesc([1, 2, 8, 8]), tensorDesc([1, 2, 8, 8]))), cpuCaps)), TypeError, 'plan.family must be "flash" or "materialized"', '"hierarchical"'),
  row("assertPlan()", "splits past 64", (f) => assertPlan({ ...f.plan, splits: 65 }), RangeError, "plan.splits must be", "current value is 65"),
  // Linear attention.
  row("linear()", "an unknown feature map", () => linear(hand("softmax")), TypeError, "featureMap must be", '"softmax"'),
  row("linear()", "no feature map", () => linear(hand(undefined)), TypeError, "featureMap must be", "undefined"),
  row("linear()", "a feature map reading qIdx", () => linear(add(score, hand(qIdx))), TypeError, "featureMap must read only score", "reads qIdx"),
  row("linear()", "a bool feature map", () => linear(causal()), TypeError, "featureMap must be numeric", "current type is bool"),
  row("linear()", "zero chunk", () => linear("elu", { chunk: 0 }), RangeError, "options.chunk must be an integer in 1..1024", "current value is 0"),
  row("linear()", "zero decay", () => linear("elu", { decay: 0 }), RangeError, "options.decay must be a number in (0, 1]", "current value is 0"),
  row("linear()", "decay above 1, named by head", () => linear("elu", { decay: [0.5, 1.5] }), RangeError, "options.decay[1] must be a number in (0, 1]", "current value is 1.5"),
  row("linear()", "NaN decay", () => linear("elu", { decay: NaN }), RangeError, "options.decay must be a number in (0, 1]", "NaN"),
  row("linear()", "decay given as a string", () => linear("elu", { decay: hand("0.5") }), TypeError, "options.decay must be a number", '"0.5"'),
  row("linear()", "negative epsilon", () => linear("elu", { epsilon: -1 }), RangeError, "options.epsilon must be at least 0", "current value is -1"),
  row("linear()", "misspelt option", () => linear("elu", hand({ decays: 0.5 })), TypeError, '"decays"', 'did you mean "decay"?'),
  row("linear()", "decays for another head count", (f) => linear("elu", { decay: [0.5, 0.5, 0.5] })(f.spec), RangeError, "normalizer.decay.length must be q heads (2)", "current value is 3"),
  row("performer()", "zero features", () => performer({ features: 0, seed: 1 }), RangeError, "options.features must be an integer in 1..65536", "current value is 0"),
  row("performer()", "missing seed", () => performer(hand({ features: 8 })), TypeError, "options.seed", "undefined"),
  row("performer()", "seed past 32 bits", () => performer({ features: 8, seed: 2 ** 33 }), RangeError, "options.seed must be an integer in", "8589934592"),
  row("performerMatrix()", "zero features", () => performerMatrix(1, 0, 4, false), RangeError, "features must be an integer in 1..65536", "current value is 0"),
  row("linearStateShape()", "a softmax spec", (f) => linearStateShape(f.spec), TypeError, 'normalizer must be "softmax" or a linear normalizer', '"softmax"'),
  row("lower()", "a window mask with linear()", (f) => lower(mask(window(2, 0))(linear("elu")(f.spec)), cpuCaps), UnsupportedSpecError, "mask with linear() is unsupported", "a mask other than causal()"),
  row("lower()", "decay without the causal mask", () => lower(linear("elu", { decay: 0.5 })(attention(desc, desc, desc)), cpuCaps), UnsupportedSpecError, "decay without a causal mask is unsupported", "[0.5,0.5]"),
  row("lower()", "lse with linear()", () => lower(linear("elu")(attention(desc, desc, desc, { lse: true })), cpuCaps), UnsupportedSpecError, "outputs.lse with linear() is unsupported", "true"),
  row("lower()", "a spec whose normalizer was edited to a string", (f) => lower({ ...f.spec, normalizer: hand("linear") }, cpuCaps), TypeError, "normalizer must be", '"linear"'),
  // Paged keys and values.
  row("page()", "pools given as null", () => page(hand(null)), TypeError, "pools must be an object { k, v }", "null"),
  row("page()", "pools of rank 3", () => page({ k: tensorDesc([4, 16, 2]), v: tensorDesc([4, 16, 2]) })(attention(desc, desc, desc)), RangeError, "k.shape must be of rank 4", "[4, 16, 2]"),
  row("page()", "a V pool of other heads", () => page({ k: tensorDesc([4, 8, 2, 8]), v: tensorDesc([4, 8, 1, 8]) })(attention(desc, desc, desc)), RangeError, "v.shape[2] must be k's (2)", "current value is 1"),
  row("page()", "a spec already paged", () => pagedTwice(), TypeError, "spec.paging must be absent", "blockSize, maxBlocks"),
  row("lower()", "probs with page()", () => lower(page({ k: tensorDesc([4, 8, 2, 8]), v: tensorDesc([4, 8, 2, 8]) })(attention(desc, desc, desc, { probs: true })), cpuCaps), UnsupportedSpecError, "outputs.probs with page() is unsupported", "true"),
  row("lowRank()", "e not a descriptor", () => lowRank(hand(5), desc), TypeError, "e must be a tensor or tensor descriptor", "5"),
  row("lowRank()", "k equal to Nk", (f) => lowRank(tensorDesc([8, 8]), tensorDesc([8, 8]))(f.spec), RangeError, "lowRank.e.shape[0] (projected rows) must be in 1..7", "current value is 8"),
  row("lowRank()", "zero rows", (f) => lowRank(tensorDesc([0, 8]), tensorDesc([0, 8]))(f.spec), RangeError, "lowRank.e.shape[0] (projected rows) must be in 1..7", "current value is 0"),
  row("lowRank()", "projection over another key count", (f) => lowRank(tensorDesc([4, 7]), tensorDesc([4, 8]))(f.spec), RangeError, "lowRank.e.shape[1] must be k length (8)", "current value is 7"),
  row("lowRank()", "rank 4 projection", (f) => lowRank(tensorDesc([1, 2, 4, 8]), tensorDesc([4, 8]))(f.spec), RangeError, "lowRank.e.shape must be [k, Nk] or [Hkv, k, Nk]", "[1, 2, 4, 8]"),
  row("lowRank()", "per-head projection for another head count", (f) => lowRank(tensorDesc([4, 8]), tensorDesc([3, 4, 8]))(f.spec), RangeError, "lowRank.f.shape[0] must be KV heads (2)", "current value is 3"),
  row("lowRank()", "f16 projection for f32 queries", (f) => lowRank(tensorDesc([4, 8], "f16"), tensorDesc([4, 8]))(f.spec), TypeError, "lowRank.e.dtype must be q's dtype f32", '"f16"'),
  row("lowRank()", "f with other rows than e", (f) => lowRank(tensorDesc([4, 8]), tensorDesc([2, 8]))(f.spec), RangeError, "lowRank.f.shape[0] must be e's rows (4)", "current value is 2"),
  row("lower()", "the causal mask with lowRank()", (f) => lower(lowRank(tensorDesc([4, 8]), tensorDesc([4, 8]))(f.spec), cpuCaps), UnsupportedSpecError, "mask with lowRank() (projected keys have no position) is unsupported", "causal()"),
  row("lower()", "probs with lowRank()", () => lower(lowRank(tensorDesc([4, 8]), tensorDesc([4, 8]))(attention(desc, desc, desc, { probs: true })), cpuCaps), UnsupportedSpecError, "outputs.probs with lowRank() is unsupported", "true"),
  row("lower()", "ALiBi (reads kvIdx) with lowRank()", () => lower(compose(alibi([1, 2]), lowRank(tensorDesc([4, 8]), tensorDesc([4, 8])))(attention(desc, desc, desc)), cpuCaps), UnsupportedSpecError, "scoreMod with lowRank() (projected keys have no position) is unsupported", "a modifier reading kvIdx"),
  row("planLayout()", "a linear plan", () => planLayout(lower(linear("elu")(attention(desc, desc, desc)), cpuCaps)), TypeError, 'plan.family must be "flash" or "materialized"', '"linear"'),
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
