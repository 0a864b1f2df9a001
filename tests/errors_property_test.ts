/**
 * Random malformed specs, plans and options (wrong kinds, out-of-range numbers, missing fields,
 * unknown keys) always raise a named error (TypeError, RangeError or UnsupportedSpecError, in the
 * house shape `Cannot …: … current …`) before any backend data call or device call, on each
 * backend; nothing else is ever thrown.
 * @module
 */
import fc from "fast-check";
import { assert, assertEquals } from "@std/assert";
import {
  add,
  attention,
  causal,
  compose,
  headParam,
  kvIdx,
  lt,
  mask,
  score,
  softcap,
  tensorDesc,
  UnsupportedSpecError,
} from "../core/mod.ts";
import { attend } from "../attend.ts";
import type { Backend } from "../backends/backend.ts";
import { createCpuBackend } from "../backends/cpu/mod.ts";
import { countingBackend, observe } from "./_device_calls.ts";
import { gpu } from "./_webgpu.ts";

const desc = tensorDesc([1, 2, 8, 8]);
/** Values no field accepts as they are. */
const junk = [null, NaN, Infinity, -1, 1.5, 2 ** 40, "x", "", true, [], [1, 2], {}, () => 0];
const badDesc = [
  ...junk,
  undefined,
  { ...desc, shape: [1, NaN, 8, 8] },
  { ...desc, shape: [1, 2, 8, 2 ** 31] },
  { ...desc, strides: [1] },
  { ...desc, strides: [128, 64, -8, 1] },
  { ...desc, offset: -1 },
  { ...desc, dtype: "f64" },
  tensorDesc([8, 8, 8]),
];
const badExpr = [
  ...junk,
  { op: "var", name: "foo" },
  { op: "lit", value: NaN },
  { op: "lt", a: kvIdx },
  { op: "nope", a: kvIdx, b: kvIdx },
  { op: "headParam", values: [] },
];
const badMask = [...badExpr, score, lt(score, 0), add(kvIdx, 1)];
const badModifier = [...badExpr, causal(), add(score, headParam([1, 2, 3]))];
const notBoolean = junk.filter((x) => typeof x !== "boolean");

/** Per field of a spec, values that make it malformed (undefined: the field is missing). */
const SPEC_FIELDS: Record<string, readonly unknown[]> = {
  q: badDesc,
  k: badDesc,
  v: badDesc,
  scale: [NaN, Infinity, -Infinity, "0.5", null, undefined, {}],
  mask: badMask,
  scoreMod: badModifier,
  groupedHeads: [...notBoolean, undefined],
  normalizer: ["linear", undefined, null, 1],
  tile: [{ q: 0, kv: 4 }, null, 5, { q: 4 }, { q: 4, kv: 4, x: 1 }, { q: 2000, kv: 4 }],
  kernel: ["sparse", 1, null],
  outputs: [null, undefined, { lse: 1, probs: false }, { lse: true }, []],
};

/** Per option of `attend()`, bad values. */
const ATTEND_OPTIONS: Record<string, readonly unknown[]> = {
  scale: [NaN, Infinity, "1", null, {}],
  causal: ["yes", 1, null, {}],
  window: [null, -1, [1, 2], { left: 1 }, { left: 1, right: 1, x: 1 }, { left: -1, right: 0 }, {
    left: 2 ** 32,
    right: 0,
  }, { left: "1", right: 0 }],
  mask: badMask.filter((x) => x !== undefined),
  softcap: [0, -1, NaN, "1", null],
  transforms: ["x", [1], [null], {}, null],
  lse: ["yes", 1, null],
  probs: ["yes", 1, null],
};

const KNOWN = new Set([...Object.keys(ATTEND_OPTIONS), "__proto__"]);
const unknownKey = fc.string({ minLength: 1, maxLength: 8 }).filter((k) => !KNOWN.has(k));
const pick = (pools: Record<string, readonly unknown[]>) =>
  fc.constantFrom(...Object.keys(pools)).chain((key) =>
    fc.constantFrom(...pools[key]).map((value) => [key, value] as const)
  );

/** Options objects `attention()` or `attend()` must refuse. */
const badOptions = (pools: Record<string, readonly unknown[]>) =>
  fc.oneof(
    fc.constantFrom(null, 5, "causal", [], true, Symbol("options")),
    pick(pools).map(([key, value]) => ({ [key]: value })),
    fc.tuple(unknownKey, fc.constantFrom(...junk, 1, false)).map(([key, value]) => ({
      causal: true,
      [key]: value,
    })),
  );

/** Whether an error is one of ours: a named class and the house message shape. */
function isNamed(e: unknown): boolean {
  return (e instanceof TypeError || e instanceof RangeError || e instanceof UnsupportedSpecError) &&
    /^Cannot [^:]+: .*current /s.test(e.message);
}

const backends: Backend[] = gpu ? [createCpuBackend(), gpu] : [createCpuBackend()];

for (const backend of backends) {
  Deno.test(`${backend.name}: malformed specs, plans and options always raise a named error before any device call`, async () => {
    const x = backend.tensor(new Float32Array(128).fill(0.5), [1, 2, 8, 8]);
    const spec = compose(mask(causal()), softcap(20))(attention(x, x, x));
    const plan = backend.plan(spec);
    await backend.run(plan, { q: x, k: x, v: x });
    const specChange = pick(SPEC_FIELDS);
    // The plan fields its spec is rebuilt from (q, k, v wait for the backends; see errors_test).
    const planChange = pick(
      Object.fromEntries(
        ["scale", "mask", "scoreMod", "tile", "outputs"].map((key) => [key, SPEC_FIELDS[key]]),
      ),
    );
    const call = fc.oneof(
      specChange.map(([key, value]) => ({
        what: `plan({ ...spec, ${key}: ${String(value)} })`,
        run: (b: Backend) => b.plan({ ...spec, [key]: value } as never),
      })),
      // The call under test is run() itself: only device calls count here.
      planChange.map(([key, value]) => ({
        what: `run({ ...plan, ${key}: ${String(value)} })`,
        run: () => backend.run({ ...plan, [key]: value } as never, { q: x, k: x, v: x }),
      })),
      badOptions({ scale: ATTEND_OPTIONS.scale, lse: notBoolean, probs: notBoolean }).map((o) => ({
        what: `attention(q, k, v, ${Deno.inspect(o)})`,
        run: () => attention(x, x, x, o as never),
      })),
      badOptions(ATTEND_OPTIONS).map((o) => ({
        what: `attend(backend, q, k, v, ${Deno.inspect(o)})`,
        run: (b: Backend) => attend(b, x, x, x, o as never),
      })),
    );
    const before = JSON.stringify((backend as { stats?: () => unknown }).stats?.());
    await fc.assert(
      fc.asyncProperty(call, async ({ what, run }) => {
        const data: string[] = [];
        const counted = countingBackend(backend, data);
        const { error, calls } = await observe(backend, () => run(counted));
        assert(isNamed(error), `${what} threw ${Deno.inspect(error)}`);
        assertEquals([...data, ...calls], [], `${what}: backend or device calls`);
      }),
      { numRuns: 400, verbose: true },
    );
    assertEquals(JSON.stringify((backend as { stats?: () => unknown }).stats?.()), before);
    backend.release(x);
  });
}
