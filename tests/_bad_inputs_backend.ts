/**
 * Bad inputs of the backends (`tensor`, `plan`, `run`, reads, `release`, `dispose`) and of
 * `attend()`: rows for `tests/errors_test.ts` (see `_bad_inputs.ts`).
 * @module
 */
import {
  add,
  attention,
  causal,
  compose,
  groupHeads,
  headParam,
  kernel,
  lt,
  mask,
  mod,
  or,
  page,
  permute,
  reshape,
  score,
  scoreMod,
  sinkLogits,
  slice,
  tensorDesc,
  tile,
  UnsupportedSpecError,
} from "../core/mod.ts";
import { attend } from "../attend.ts";
import { mergeStates } from "../merge_states.ts";
import { pagedAttend } from "../paged_attend.ts";
import { KvCache } from "../kv/kv_cache.ts";
import { attendVjp } from "../attend_vjp.ts";
import { vjp } from "../vjp.ts";
import { linearAttend } from "../linear_attend.ts";
import { linearState } from "../linear_state.ts";
import { linear } from "../variants/linear.ts";
import { lowRank } from "../variants/low_rank.ts";
import { registerBackend } from "../backends/backend.ts";
import { createWebGpuBackend, type WebGpuBackend } from "../backends/webgpu/mod.ts";
import { createCpuBackend } from "../backends/cpu/mod.ts";
import { blockMask } from "../variants/mod.ts";
import { type BadInput, type Fixture, row } from "./_bad_inputs.ts";

const hand = (x: unknown) => x as never;
const io = (f: Fixture) => ({ q: f.q, k: f.k, v: f.v });
/** Array-like data that throws if anything copies an element. */
const uncopyable = (length: number) =>
  new Proxy({ length }, {
    get: (target, key) => {
      if (key === "length") return target.length;
      throw new Error("element read: the data was copied before the size check");
    },
  }) as ArrayLike<number>;
/** f32 elements one past the WebGPU device's buffer limit. */
const overLimit = (f: Fixture) =>
  Math.floor((f.backend as unknown as WebGpuBackend).device.limits.maxBufferSize / 4) + 1;
/** A 90×90 tile matrix: a block mask whose table takes 8100 of the literal words. */
const tileMatrix = (seed: number) =>
  blockMask(
    Array.from({ length: 90 }, (_, i) =>
      Array.from({ length: 90 }, (_, j) => (i * j + seed) % 3 === 0)),
    { tileQ: 1, tileKv: 1 },
  );
const plain = (q: number[], k: number[], opts = {}) =>
  attention(tensorDesc(q), tensorDesc(k), tensorDesc(k), opts);

/** The causal linear plan over the fixture's tensors, or over `qLen` queries and `kvLen` keys. */
const linearPlanOf = (f: Fixture, qLen: number, kvLen: number) =>
  f.backend.plan(
    compose(mask(causal()), linear("elu"))(
      attention(slice(f.q, 2, 0, qLen), slice(f.k, 2, 0, kvLen), slice(f.v, 2, 0, kvLen)),
    ),
  );
const linearPlan = (f: Fixture) => linearPlanOf(f, 8, 8);

/** A `[1, 2, 8]` view of the fixture's k (its first column): an lse-shaped tensor. */
const rowLse = (f: Fixture) => Object.freeze({ ...f.k, shape: [1, 2, 8], strides: [128, 64, 8] });
/** The fixture's k as a paged pool: 2 blocks of 8 slots, 1 KV head of dim 8. */
const pool = (f: Fixture) => reshape(f.k, [2, 8, 1, 8]);
/** A paged plan over the fixture's q (2 heads, one KV head) and `pool`: 2 block-table columns. */
const pagedPlan = (f: Fixture) =>
  f.backend.plan(
    compose(groupHeads(), page({ k: pool(f), v: pool(f) }))(
      attention(f.q, tensorDesc([1, 1, 16, 8]), tensorDesc([1, 1, 16, 8])),
    ),
  );

/** Backward inputs over the fixture's plan: q stands in for out and dOut (Dv = D), zeros for lse. */
const backwardIo = (f: Fixture) => ({
  ...io(f),
  out: f.q,
  lse: f.backend.tensor(new Float32Array(16), [1, 2, 8]),
  dOut: f.q,
});

/** A `[4, 8]` projection on the fixture's backend (CPU rows: no device call), and the low-rank plan. */
const projection = (f: Fixture) => f.backend.tensor(new Float32Array(32).fill(0.125), [4, 8]);
const lowRankPlan = (f: Fixture) =>
  f.backend.plan(lowRank(tensorDesc([4, 8]), tensorDesc([4, 8]))(attention(f.q, f.k, f.v)));

/** Bad inputs of the backends and `attend()`. */
// deno-fmt-ignore
export const BACKEND_BAD_INPUTS: readonly BadInput[] = [
  // registerBackend()
  row("registerBackend()", "factory that is not a function", () => registerBackend("bad", hand(5)), TypeError, "factory must be a function", "number"),
  // createWebGpuBackend()
  row("createWebGpuBackend()", "misspelt option, before acquiring a device", () => createWebGpuBackend(hand({ flashTiles: { q: 64, kv: 64 } })), TypeError, 'options key must be one of flashTile, flashKeysPerThread, flashUnroll', '"flashTiles" (did you mean "flashTile"?)', "webgpu"),
  row("createWebGpuBackend()", "keys per invocation other than 4 or 8", () => createWebGpuBackend(hand({ flashKeysPerThread: 6 })), RangeError, "flashKeysPerThread must be 4 or 8", "current value is 6", "webgpu"),
  // createCpuBackend()
  row("createCpuBackend()", "misspelt option", () => createCpuBackend(hand({ kernel: "typescript" })), TypeError, "options key must be one of kernels, threads", '"kernel" (did you mean "kernels"?)', "cpu"),
  row("createCpuBackend()", "unknown kernel path", () => createCpuBackend(hand({ kernels: "wasm" })), RangeError, "options.kernels must be one of auto, wasm-relaxed-simd, wasm-simd, typescript", 'current value is "wasm"', "cpu"),
  row("createCpuBackend()", "thread count that is not a positive integer", () => createCpuBackend({ threads: 1.5 }), RangeError, "options.threads must be an integer in 1..64", "current value is 1.5", "cpu"),
  row("createCpuBackend()", "threads with the TypeScript kernels", () => createCpuBackend({ kernels: "typescript", threads: 2 }), RangeError, "options.threads above 1 needs WebAssembly kernels", "current value is 2", "cpu"),
  row("createCpuBackend()", "threads given as a string", () => createCpuBackend(hand({ threads: "2" })), TypeError, "options.threads must be a number", '"2"', "cpu"),
  // tensor()
  row("backend.tensor()", "shape given as a number", (f) => f.backend.tensor([1], hand(4)), TypeError, "shape must be an array", "current value is 4"),
  row("backend.tensor()", "NaN shape entry, named as the shape", (f) => f.backend.tensor([1], [NaN]), RangeError, "shape[0] must be a non-negative integer", "NaN"),
  row("backend.tensor()", "negative shape entry", (f) => f.backend.tensor([], [1, -1]), RangeError, "shape[1]", "-1"),
  row("backend.tensor()", "unknown dtype", (f) => f.backend.tensor([1], [1], hand("f64")), TypeError, "dtype", '"f64"'),
  row("backend.tensor()", "null data", (f) => f.backend.tensor(hand(null), [1]), TypeError, "data must be an array", "null"),
  row("backend.tensor()", "data of another length", (f) => f.backend.tensor([1, 2], [3]), RangeError, "data.length must equal 3", "current value is 2"),
  row("backend.tensor()", "more elements than a kernel addresses, before any allocation", (f) => f.backend.tensor(uncopyable(2 ** 33), [2 ** 33]), RangeError, "must have at most 4294967296 elements", "current element count is 8589934592", "cpu"),
  row("backend.tensor()", "over the device's buffer limit, before any host copy", (f) => f.backend.tensor(uncopyable(overLimit(f)), [overLimit(f)]), RangeError, "maxBufferSize", (f) => `current value is ${4 * overLimit(f)} bytes`, "webgpu"),
  // plan() and lower()
  row("backend.plan()", "literals beyond the device's uniform binding, before any compile", (f) => f.backend.plan(mask(or(or(tileMatrix(1), tileMatrix(2)), tileMatrix(3)))(f.spec)), UnsupportedSpecError, "mask, scoreMod and sinkLogits literals is unsupported", "(the device binds at most", "webgpu"),
  row("backend.plan()", "sink logits for fewer heads than the spec has", (f) => f.backend.plan(sinkLogits([1])(f.spec)), RangeError, "sinkLogits.length must be q heads (2)", "current value is 1"),
  row("backend.plan()", "per-head parameter with fewer values than heads", (f) => f.backend.plan(scoreMod(add(score, headParam([1])))(f.spec)), RangeError, "scoreMod headParam values.length must be q heads (2)", "current value is 1"),
  row("backend.plan()", "per-head parameter with more values than heads", (f) => f.backend.plan(mask(lt(headParam([1, 2, 3]), 5))(f.spec)), RangeError, "mask headParam values.length must be q heads (2)", "current value is 3"),
  row("backend.plan()", "spec whose scale was edited to NaN", (f) => f.backend.plan({ ...f.spec, scale: NaN }), RangeError, "scale must be a finite number", "NaN"),
  row("backend.plan()", "spec whose mask reads an unknown variable", (f) => f.backend.plan({ ...f.spec, mask: hand({ op: "var", name: "foo" }) }), TypeError, "mask.name must be one of", '"foo"'),
  row("backend.plan()", "null spec", (f) => f.backend.plan(hand(null)), TypeError, "spec must be an AttentionSpec", "null"),
  row("backend.plan()", "outputs of the wrong kind", (f) => f.backend.plan({ ...f.spec, outputs: hand({ lse: 1, probs: false }) }), TypeError, "outputs.lse must be a boolean", "1"),
  row("backend.plan()", "length past 32-bit positions", (f) => f.backend.plan(plain([1, 1, 2 ** 31, 1], [1, 1, 4, 1])), RangeError, "q.shape[2] must be at most 1073741824", "2147483648"),
  row("backend.plan()", "extent past 32-bit indices", (f) => f.backend.plan(plain([1, 16, 2 ** 25, 16], [1, 16, 4, 16])), RangeError, "q extent must be at most 4294967296", "8589934592"),
  row("backend.plan()", "materialized scores past 32-bit indices", (f) => f.backend.plan(kernel("materialized")(plain([1, 1, 2 ** 17, 1], [1, 1, 2 ** 17, 1]))), RangeError, "scores per head (Nq·Nk) must be at most", "17179869184"),
  row("backend.plan()", "probabilities past 32-bit indices", (f) => f.backend.plan(plain([1, 2, 2 ** 16, 1], [1, 2, 2 ** 16, 1], { probs: true })), RangeError, "probs size (B·Hq·Nq·Nk) must be at most", "8589934592"),
  row("backend.plan()", "fewer KV heads without groupHeads()", (f) => f.backend.plan(attention(f.q, tensorDesc([1, 1, 8, 8]), tensorDesc([1, 1, 8, 8]))), RangeError, "unless groupHeads() is applied", "current value is 1"),
  row("backend.plan()", "probabilities from the flash kernel", (f) => f.backend.plan(kernel("flash")(attention(f.q, f.k, f.v, { probs: true }))), UnsupportedSpecError, "outputs.probs with kernel is unsupported", "flash"),
  row("backend.plan()", "head dim past the kernels'", (f) => f.backend.plan(plain([1, 1, 4, 512], [1, 1, 4, 512])), UnsupportedSpecError, "headDim is unsupported", "512", "webgpu"),
  row("backend.plan()", "a tile the device does not run", (f) => f.backend.plan(tile({ q: 8, kv: 8 })(f.spec)), UnsupportedSpecError, "tile is unsupported", "8x8", "webgpu"),
  // run() and prepare()
  row("backend.run()", "plan whose scale was edited to NaN", (f) => f.backend.run({ ...f.plan, scale: NaN }, io(f)), RangeError, "scale must be a finite number", "NaN"),
  row("backend.run()", "plan whose key was edited", (f) => f.backend.run({ ...f.plan, key: "0" }, io(f)), RangeError, "plan.key must be", 'current value is "0"'),
  row("backend.run()", "plan whose key was edited", (f) => f.backend.run({ ...f.plan, key: "x" }, io(f)), RangeError, "plan.key must be", '"x"'),
  row("backend.run()", "plan of another backend", (f) => f.backend.run({ ...f.plan, backend: "other" }, io(f)), TypeError, "plan.backend must be", "other"),
  row("backend.run()", "null inputs", (f) => f.backend.run(f.plan, hand(null)), TypeError, "inputs must be { q, k, v }", "null"),
  row("backend.run()", "released k, named as k", (f) => f.backend.run(f.plan, { ...io(f), k: f.released }), TypeError, "Cannot use k", "released"),
  row("backend.run()", "q of another instance", (f) => f.backend.run(f.plan, { ...io(f), q: f.foreign }), TypeError, "Cannot use q", "another instance"),
  row("backend.run()", "hand-built view past its storage", (f) => { const past = { ...f.q, shape: [1, 2, 16, 8] }; return f.backend.run(f.backend.plan(mask(causal())(attention(past, past, past))), { q: past, k: past, v: past }); }, RangeError, "view must stay inside its storage of 128 elements", "current extent is 192"),
  row("backend.run()", "probabilities too large for the device, before compiling", (f) => f.backend.run(f.backend.plan(attention(f.big!.q, f.big!.kv, f.big!.kv, { probs: true })), { q: f.big!.q, k: f.big!.kv, v: f.big!.kv }), RangeError, "scores need", (f) => `${f.big!.scoreBytes} bytes`, "webgpu"),
  row("backend.prepare()", "null plan", (f) => f.backend.prepare(hand(null)), TypeError, "plan must be a KernelPlan from lower()", "null"),
  row("backend.run()", "plan whose q descriptor was replaced", (f) => f.backend.run({ ...f.plan, q: hand(null) }, io(f)), TypeError, "q must be a tensor or tensor descriptor", "null"),
  row("backend.prepare()", "plan whose scale was edited to NaN", (f) => f.backend.prepare({ ...f.plan, scale: NaN }), RangeError, "scale must be a finite number", "NaN"),
  // read(), readInto(), release(), dispose()
  row("backend.read()", "tensor of another instance", (f) => f.backend.read(f.foreign), TypeError, "Cannot use tensor", "another instance"),
  row("backend.read()", "released tensor", (f) => f.backend.read(f.released), TypeError, "storage must be live", "released"),
  row("backend.readInto()", "target of another length", (f) => f.backend.readInto(f.q, new Float32Array(3)), RangeError, "target.length must equal 128", "current value is 3"),
  row("backend.readInto()", "target of another kind", (f) => f.backend.readInto(f.q, hand(new Float64Array(128))), TypeError, "target must be a Float32Array", "Float64Array"),
  row("backend.readMany()", "tensors not an array", (f) => f.backend.readMany(hand(null)), TypeError, "tensors must be an array", "null"),
  row("backend.readMany()", "a released tensor among them, named by index", (f) => f.backend.readMany([f.q, f.released]), TypeError, "Cannot use tensors[1]", "released"),
  row("backend.release()", "tensor of another instance", (f) => f.backend.release(f.foreign), TypeError, "Cannot use tensor", "another instance"),
  row("disposed backend", "tensor()", (f) => f.disposed.tensor([1], [1]), TypeError, "must not be disposed", "disposed"),
  row("disposed backend", "plan()", (f) => f.disposed.plan(f.spec), TypeError, "must not be disposed", "disposed"),
  row("disposed backend", "read()", (f) => f.disposed.read(f.q), TypeError, "must not be disposed", "disposed"),
  // Linear attention: run(), linearState(), linearAttend().
  row("backend.run()", "a state for a softmax plan", (f) => f.backend.run(f.plan, { ...io(f), state: f.q }), TypeError, "state must be absent (the plan is not linear)", "a tensor"),
  row("backend.run()", "a linear state of another shape", (f) => f.backend.run(linearPlan(f), { ...io(f), state: f.backend.tensor(new Float32Array(128), [1, 2, 8, 8]) }), RangeError, "state.shape must be [1,2,8,9]", "current value is [1,2,8,8]", "cpu"),
  row("backend.run()", "an f16 linear state", (f) => f.backend.run(linearPlan(f), { ...io(f), state: f.backend.tensor(new Float32Array(144), [1, 2, 8, 9], "f16") }), TypeError, "state.dtype must be f32", "f16", "cpu"),
  row("backend.run()", "a released linear state", (f) => f.backend.run(linearPlan(f), { ...io(f), state: f.released }), TypeError, "Cannot use state", "released"),
  row("backend.run()", "a causal state with more queries than keys", (f) => { const p = linearPlanOf(f, 8, 4); return f.backend.run(p, { q: f.q, k: slice(f.k, 2, 0, 4), v: slice(f.v, 2, 0, 4), state: linearState(f.backend, p) }); }, RangeError, "q length must be at most k length (4) with a causal state", "current value is 8", "cpu"),
  row("linearState()", "a softmax spec", (f) => linearState(f.backend, f.spec), TypeError, "spec.normalizer must be linear", '"softmax"'),
  row("linearState()", "no backend", (f) => linearState(hand(null), linear("elu")(f.spec)), TypeError, "backend must be a Backend", "null"),
  row("linearAttend()", "no feature map", (f) => linearAttend(f.backend, f.q, f.k, f.v, hand({ causal: true })), TypeError, "featureMap must be", "undefined"),
  row("linearAttend()", "misspelt option", (f) => linearAttend(f.backend, f.q, f.k, f.v, hand({ featureMap: "elu", casual: true })), TypeError, '"casual"', 'did you mean "causal"?'),
  row("linearAttend()", "decay outside (0, 1]", (f) => linearAttend(f.backend, f.q, f.k, f.v, { featureMap: "elu", causal: true, decay: 2 }), RangeError, "options.decay must be a number in (0, 1]", "current value is 2"),
  row("linearAttend()", "zero chunk", (f) => linearAttend(f.backend, f.q, f.k, f.v, { featureMap: "elu", chunk: 0 }), RangeError, "options.chunk must be an integer in 1..1024", "current value is 0"),
  row("linearAttend()", "a state of another instance", (f) => linearAttend(f.backend, f.q, f.k, f.v, { featureMap: "elu", state: f.foreign }), TypeError, "Cannot use state", "another instance", "cpu"),
  row("linearAttend()", "null options", (f) => linearAttend(f.backend, f.q, f.k, f.v, hand(null)), TypeError, "options must be an object { featureMap, … }", "null"),
  // Low-rank attention: run().
  row("backend.run()", "a low-rank plan without f", (f) => f.backend.run(lowRankPlan(f), { ...io(f), e: projection(f) }), TypeError, "f must be the low-rank projection tensor [4,8]", "undefined", "cpu"),
  row("backend.run()", "a projection of another shape", (f) => f.backend.run(lowRankPlan(f), { ...io(f), e: projection(f), f: f.backend.tensor(new Float32Array(16), [2, 8]) }), RangeError, "f.shape must be 4,8 as planned", "current value is 2,8", "cpu"),
  row("backend.run()", "an f16 projection for an f32 plan", (f) => f.backend.run(lowRankPlan(f), { ...io(f), e: f.backend.tensor(new Float32Array(32), [4, 8], "f16"), f: projection(f) }), RangeError, "e.dtype must be f32 as planned", "current value is f16", "cpu"),
  row("backend.run()", "a projection of another instance", (f) => f.backend.run(lowRankPlan(f), { ...io(f), e: f.foreign, f: f.q }), TypeError, "Cannot use e", "another instance"),
  row("backend.run()", "a projection for a plan that is not low-rank", (f) => f.backend.run(f.plan, { ...io(f), e: f.q }), TypeError, "e must be absent (the plan is not low-rank)", "a tensor"),
  // attend()
  row("attend()", "misspelt option runs nothing", (f) => attend(f.backend, f.q, f.k, f.v, hand({ casual: true })), TypeError, '"casual"', 'did you mean "causal"?'),
  row("attend()", "null options", (f) => attend(f.backend, f.q, f.k, f.v, hand(null)), TypeError, "options must be an object or undefined", "null"),
  row("attend()", "window past 32-bit positions", (f) => attend(f.backend, f.q, f.k, f.v, { window: { left: 2 ** 32, right: 0 } }), RangeError, "options.window.left", "4294967296"),
  row("attend()", "window as an array", (f) => attend(f.backend, f.q, f.k, f.v, { window: hand([2, 0]) }), TypeError, "options.window must be an object", "[2, 0]"),
  row("attend()", "window missing right", (f) => attend(f.backend, f.q, f.k, f.v, { window: hand({ left: 2 }) }), TypeError, "options.window.right", "undefined"),
  row("attend()", "window with an unknown key", (f) => attend(f.backend, f.q, f.k, f.v, { window: hand({ left: 2, right: 0, up: 1 }) }), TypeError, "options.window key", '"up"'),
  row("attend()", "mask given as a string", (f) => attend(f.backend, f.q, f.k, f.v, { mask: hand("causal") }), TypeError, "options.mask must be an object", '"causal"'),
  row("attend()", "mask reading an unknown variable", (f) => attend(f.backend, f.q, f.k, f.v, { mask: hand({ op: "var", name: "foo" }) }), TypeError, "options.mask.name", '"foo"'),
  row("attend()", "zero softcap", (f) => attend(f.backend, f.q, f.k, f.v, { softcap: 0 }), RangeError, "options.softcap must be a positive finite number", "0"),
  row("attend()", "a non-function transform", (f) => attend(f.backend, f.q, f.k, f.v, { transforms: hand([groupHeads(), 1]) }), TypeError, "options.transforms[1] must be a function", "1"),
  row("attend()", "scale of the wrong kind", (f) => attend(f.backend, f.q, f.k, f.v, { scale: hand("1") }), TypeError, "options.scale must be a number", '"1"'),
  row("attend()", "no backend", (f) => attend(hand(undefined), f.q, f.k, f.v), TypeError, "backend must be a Backend", "undefined"),
  row("attend()", "k not a tensor", (f) => attend(f.backend, f.q, hand(5), f.v), TypeError, "k must be a tensor or tensor descriptor", "5"),
  // Backward passes: vjp(), attendVjp(), backend.backward().
  row("vjp()", "a backend without backward()", (f) => vjp(hand({ name: "bare", plan: f.backend.plan, run: f.backend.run }), f.spec, io(f)), UnsupportedSpecError, 'backend "bare": backward is unsupported', "absent"),
  row("vjp()", "a custom feature map with a float mod, which has no derivative", (f) => vjp(f.backend, linear(mod(score, 2))(f.spec), io(f)), UnsupportedSpecError, "featureMap gradient op is unsupported", "mod", "cpu"),
  row("vjp()", "a low-rank spec", (f) => vjp(f.backend, lowRank(tensorDesc([4, 8]), tensorDesc([4, 8]))(f.spec), io(f)), UnsupportedSpecError, "backward of lowRank is unsupported", "set", "cpu"),
  row("vjp()", "a score modifier with a float mod, which has no derivative", (f) => vjp(f.backend, scoreMod(mod(score, 2))(f.spec), io(f)), UnsupportedSpecError, "scoreMod gradient op is unsupported", "mod", "cpu"),
  row("vjp()", "null io", (f) => vjp(f.backend, f.spec, hand(null)), TypeError, "io must be an object { q, k, v }", "null", "cpu"),
  row("backend.backward()", "dOut of another shape", (f) => f.backend.backward!(f.plan, { ...backwardIo(f), dOut: slice(f.q, 3, 0, 4) }), RangeError, "dOut.shape must be [1,2,8,8] as planned", "current value is [1,2,8,4]", "cpu"),
  row("backend.backward()", "dOut of another dtype", (f) => f.backend.backward!(f.plan, { ...backwardIo(f), dOut: f.backend.tensor(new Float32Array(128), [1, 2, 8, 8], "f16") }), TypeError, "dOut.dtype must be f32 as planned", "current value is f16", "cpu"),
  row("backend.backward()", "dOut of another instance", (f) => f.backend.backward!(f.plan, { ...backwardIo(f), dOut: f.foreign }), TypeError, "Cannot use dOut", "another instance", "cpu"),
  row("backend.backward()", "the saved out released before the backward pass", (f) => f.backend.backward!(f.plan, { ...backwardIo(f), out: f.released }), TypeError, "Cannot use out", "released", "cpu"),
  row("backend.backward()", "no lse", (f) => f.backend.backward!(f.plan, { ...backwardIo(f), lse: hand(undefined) }), TypeError, "lse must be a tensor", "undefined", "cpu"),
  row("backend.backward()", "lse of another shape", (f) => f.backend.backward!(f.plan, { ...backwardIo(f), lse: f.q }), RangeError, "lse.shape must be [1,2,8] as planned", "current value is [1,2,8,8]", "cpu"),
  row("backend.backward()", "a low-rank plan", (f) => f.backend.backward!(lowRankPlan(f), backwardIo(f)), UnsupportedSpecError, "backward of lowRank is unsupported", "set", "cpu"),
  row("backend.backward()", "a linear plan with dOut of another shape", (f) => f.backend.backward!(linearPlan(f), { ...backwardIo(f), dOut: slice(f.q, 3, 0, 4) }), RangeError, "dOut.shape must be [1,2,8,8] as planned", "current value is [1,2,8,4]", "cpu"),
  row("backend.backward()", "null inputs", (f) => f.backend.backward!(f.plan, hand(null)), TypeError, "inputs must be { q, k, v, out, lse?, dOut }", "null", "cpu"),
  row("attendVjp()", "misspelt option runs nothing", (f) => attendVjp(f.backend, f.q, f.k, f.v, hand({ sinkLogit: [0, 0] })), TypeError, '"sinkLogit"', 'did you mean "sinkLogits"?'),
  row("attendVjp()", "one ALiBi slope for two heads", (f) => attendVjp(f.backend, f.q, f.k, f.v, { alibi: [0.5] }), RangeError, "slopes.length must equal q heads (2)", "current value is 1"),
  row("attendVjp()", "the lse option, which it always returns", (f) => attendVjp(f.backend, f.q, f.k, f.v, hand({ lse: true })), TypeError, "each options key must be one of", '"lse"'),
  // Row copies of the KV cache's pools.
  row("backend.scatterRows()", "a permuted (non-contiguous) target", (f) => f.backend.scatterRows(permute(f.k, [0, 2, 1, 3]), Int32Array.of(0), f.q), RangeError, "target.strides must be contiguous [128,16,8,1]", "current value is [128, 8, 64, 1]"),
  row("backend.scatterRows()", "rows as a plain array", (f) => f.backend.scatterRows(f.k, hand([0]), f.q), TypeError, "rows must be an Int32Array", "current value is [0]"),
  row("backend.scatterRows()", "a row past the target's", (f) => f.backend.scatterRows(f.k, Int32Array.of(1), f.q), RangeError, "rows[0] must be in 0..0", "current value is 1"),
  row("backend.scatterRows()", "a source of another row shape", (f) => f.backend.scatterRows(f.k, Int32Array.of(0), slice(f.q, 3, 0, 4)), RangeError, "source.shape must be [1,2,8,8]", "current value is [1, 2, 8, 4]"),
  row("backend.scatterRows()", "a row written twice", (f) => f.backend.scatterRows(reshape(f.k, [2, 64]), Int32Array.of(1, 1), reshape(f.q, [2, 64])), RangeError, "rows[1] must be a row not written twice", "current value is 1"),
  row("backend.scatterRows()", "a released target", (f) => f.backend.scatterRows(f.released, Int32Array.of(0), f.q), TypeError, "Cannot use target", "released"),
  row("backend.gatherRows()", "a negative row", (f) => f.backend.gatherRows(f.q, Int32Array.of(-1)), RangeError, "rows[0] must be in 0..0", "current value is -1"),
  row("backend.mergeStates()", "one state", (f) => f.backend.mergeStates([{ out: f.q, lse: f.k }]), RangeError, "states.length must be at least 2", "current value is 1"),
  row("mergeStates()", "lse of mismatched shapes", (f) => mergeStates(f.backend, [{ out: f.q, lse: rowLse(f) }, { out: f.q, lse: f.k }]), RangeError, "states[1].lse.shape must be [1,2,8]", "current value is [1, 2, 8, 8]"),
  // Paged runs and the KV cache.
  row("backend.run()", "a paged plan with a block id past the pool", (f) => f.backend.run(pagedPlan(f), { q: f.q, k: pool(f), v: pool(f), pages: { tables: [0, 5], lengths: [16] } }), RangeError, "pages.tables[1] must be an integer in -1..1", "current value is 5"),
  row("backend.run()", "pages with a plan that is not paged", (f) => f.backend.run(f.plan, { ...io(f), pages: { tables: [0], lengths: [1] } }), TypeError, "pages must be absent (the plan is not paged)", "keys tables, lengths"),
  row("KvCache", "zero blocks, before any pool is allocated", (f) => new KvCache(f.backend, { numBlocks: 0, blockSize: 4, kvHeads: 1, headDim: 8 }), RangeError, "numBlocks must be", "current value is 0"),
  row("pagedAttend()", "a cache on another backend instance", (f) => pagedAttend(f.backend, f.q, new KvCache(createCpuBackend(), { numBlocks: 2, blockSize: 4, kvHeads: 1, headDim: 8 }), [0]), TypeError, "cache must be a KvCache on this backend", "KvCache", "cpu"),
];
