import fc from "fast-check";
import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  alibi,
  alibiSlopes,
  and,
  assertPlan,
  attention,
  BlockKind,
  broadcast,
  causal,
  classifyBlocks,
  compose,
  evaluate,
  explain,
  exprKey,
  groupHeads,
  kvIdx,
  lit,
  lower,
  lt,
  mask,
  or,
  permute,
  reshape,
  scale,
  score,
  scoreMod,
  slice,
  softcap,
  tensorDesc,
  tile,
  toWgsl,
  typeOf,
  UnsupportedSpecError,
  window,
} from "../../core/mod.ts";
import { cpuCaps } from "../../backends/cpu/mod.ts";
import { maskCase } from "../_arbitraries.ts";

const x = tensorDesc([1, 2, 16, 8]);

Deno.test("compose() is associative", () => {
  const ts = [mask(causal()), scale(0.3), softcap(20), tile({ q: 4, kv: 8 })];
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom(...ts), { maxLength: 6 }),
      fc.nat(6),
      fc.nat(6),
      (list, i, j) => {
        const [a, b] = [Math.min(i, list.length), Math.min(Math.max(i, j), list.length)];
        const f = compose(...list.slice(0, a)),
          g = compose(...list.slice(a, b)),
          h = compose(...list.slice(b));
        const spec = attention(x, x, x);
        assertEquals(
          lower(compose(compose(f, g), h)(spec), cpuCaps).key,
          lower(compose(f, compose(g, h))(spec), cpuCaps).key,
        );
      },
    ),
  );
});

Deno.test("mask() is idempotent and and/or commute on every element", () => {
  fc.assert(
    fc.property(
      maskCase,
      maskCase,
      fc.integer({ min: 1, max: 20 }),
      fc.integer({ min: 1, max: 20 }),
      (m1, m2, nq, nk) => {
        const once = mask(m1.expr)(attention(x, x, x));
        assertEquals(mask(m1.expr)(once).mask, once.mask);
        for (let i = 0; i < nq; i++) {
          for (let j = 0; j < nk; j++) {
            const env = { b: 0, h: 1, qIdx: i, kvIdx: j, qLen: nq, kvLen: nk };
            assertEquals(
              evaluate(and(m1.expr, m2.expr), env),
              evaluate(and(m2.expr, m1.expr), env),
            );
            assertEquals(evaluate(or(m1.expr, m2.expr), env), evaluate(or(m2.expr, m1.expr), env));
            assertEquals(evaluate(m1.expr, env), m1.allowed(0, 1, i, j, nq, nk), m1.name);
          }
        }
      },
    ),
  );
});

Deno.test("classifyBlocks() agrees with evaluate() on every element (packed rows too), exactly for causal and window", () => {
  fc.assert(fc.property(
    maskCase,
    fc.integer({ min: 1, max: 60 }),
    fc.integer({ min: 1, max: 60 }),
    fc.integer({ min: 1, max: 9 }),
    fc.integer({ min: 1, max: 9 }),
    fc.integer({ min: 1, max: 3 }),
    (m, qLen, kvLen, tileQ, tileKv, pack) => {
      const layout = classifyBlocks(m.expr, {
        qLen,
        kvLen,
        batch: 2,
        heads: 3,
        tileQ,
        tileKv,
        pack,
      });
      const exact = m.name === "causal" || m.name.startsWith("window");
      for (let row = 0; row < layout.rows; row++) {
        for (let col = 0; col < layout.cols; col++) {
          let seen = 0, total = 0;
          for (let b = 0; b < 2; b++) {
            for (let hh = 0; hh < 3; hh++) {
              for (let f = row * tileQ; f < Math.min(qLen * pack, (row + 1) * tileQ); f++) {
                const i = Math.floor(f / pack);
                for (let j = col * tileKv; j < Math.min(kvLen, (col + 1) * tileKv); j++) {
                  total++;
                  if (evaluate(m.expr, { b, h: hh, qIdx: i, kvIdx: j, qLen, kvLen })) seen++;
                }
              }
            }
          }
          const kind = layout.kinds[row * layout.cols + col];
          if (kind === BlockKind.full) assertEquals(seen, total, `${m.name} full tile`);
          if (kind === BlockKind.empty) assertEquals(seen, 0, `${m.name} empty tile`);
          if (exact && kind === BlockKind.partial) {
            assert(seen > 0 && seen < total, `${m.name} partial tile`);
          }
        }
      }
    },
  ));
});

Deno.test("equal Exprs share keys and generated WGSL", () => {
  assertEquals(exprKey(window(3, 1)), exprKey(window(3, 1)));
  assertEquals(toWgsl("mask_mod", window(3, 1)), toWgsl("mask_mod", window(3, 1)));
  assert(exprKey(window(3, 1)) !== exprKey(window(1, 3)));
});

Deno.test("view ops never copy and name the bad dimension", () => {
  const d = tensorDesc([2, 3, 4]);
  assertEquals(permute(d, [2, 0, 1]).strides, [1, 12, 4]);
  assertEquals(slice(d, 1, 1, 3).offset, 4);
  assertEquals(broadcast(tensorDesc([1, 4]), [5, 4]).strides, [0, 1]);
  assertEquals(reshape(d, [6, 4]).shape, [6, 4]);
  assertThrows(
    () => tensorDesc([2, -1]),
    RangeError,
    "shape[1] must be a non-negative integer, current value is -1",
  );
  assertThrows(() => tensorDesc([2], "f64" as "f32"), TypeError, 'current value is "f64"');
  assertThrows(() => permute(d, [0, 0, 1]), RangeError, "axes must be a permutation");
  assertThrows(() => reshape(permute(d, [1, 0, 2]), [6, 4]), RangeError, "must be contiguous");
  assertThrows(
    () => slice(d, 2, 0, 5),
    RangeError,
    "end must be at most shape[2] = 4, current value is 5",
  );
  assertThrows(() => broadcast(d, [2, 5, 4]), RangeError, "shape[1] is 3, current target is 5");
});

Deno.test("attention() and transforms reject bad input naming field and value", () => {
  const q = tensorDesc([1, 4, 8, 16]);
  assertThrows(
    () => attention(q, tensorDesc([1, 4, 8, 8]), tensorDesc([1, 4, 8, 16])),
    RangeError,
    "k.shape[3] must equal q head dim (16), current value is 8",
  );
  assertThrows(
    () => attention(q, tensorDesc([1, 3, 8, 16]), tensorDesc([1, 3, 8, 16])),
    RangeError,
    "k.shape[1] (KV heads) must divide q heads (4), current value is 3",
  );
  assertThrows(
    () => attention(q, tensorDesc([1, 4, 8, 16]), tensorDesc([1, 4, 9, 16])),
    RangeError,
    "v.shape[2] must equal k length (8), current value is 9",
  );
  assertThrows(
    () => attention(q, q, tensorDesc([1, 4, 8, 16], "f16")),
    TypeError,
    "v.dtype must equal q.dtype (f32), current value is f16",
  );
  assertThrows(
    () => attention(q, q, q, { scale: NaN }),
    RangeError,
    "scale must be a finite number, current value is NaN",
  );
  assertThrows(() => attention(tensorDesc([4, 8, 16]), q, q), RangeError, "q must have rank 4");
  assertThrows(
    () => window(-1, 0),
    RangeError,
    "left must be an integer in 0..1073741824, current value is -1",
  );
  assertThrows(
    () => window(2, 1.5),
    RangeError,
    "right must be an integer in 0..1073741824, current value is 1.5",
  );
  assertThrows(
    () => softcap(0),
    RangeError,
    "cap must be a positive finite number, current value is 0",
  );
  assertThrows(
    () => tile({ q: 0, kv: 4 }),
    RangeError,
    "tile.q must be an integer in 1..1024, current value is 0",
  );
  assertThrows(() => mask(score as never), TypeError, "mask must be bool, current type is float");
  assertThrows(() => scoreMod(causal()), TypeError, "modifier must be numeric");
  assertThrows(
    () => alibi(alibiSlopes(3))(attention(q, q, q)),
    RangeError,
    "slopes.length must equal q heads (4), current value is 3",
  );
  const gqa = attention(q, tensorDesc([1, 2, 8, 16]), tensorDesc([1, 2, 8, 16]));
  assertThrows(
    () => lower(gqa, cpuCaps),
    RangeError,
    "unless groupHeads() is applied, current value is 2",
  );
  assertEquals(lower(groupHeads()(gqa), cpuCaps).sizes.kvHeads, 2);
  assertThrows(
    () => lower(compose(tile({ q: 4, kv: 4 }))(attention(q, q, q, { probs: true })), cpuCaps),
    UnsupportedSpecError,
    "outputs.probs with kernel",
  );
});

Deno.test("causal Nq != Nk aligns bottom-right", () => {
  const seen = (i: number, j: number) =>
    evaluate(causal(), { qIdx: i, kvIdx: j, qLen: 2, kvLen: 5 });
  assertEquals([0, 1, 2, 3, 4].map((j) => seen(0, j)), [true, true, true, true, false]);
  assertEquals([0, 1, 2, 3, 4].map((j) => seen(1, j)), [true, true, true, true, true]);
  assert(
    evaluate(window(100, 100), { qIdx: 0, kvIdx: 4, qLen: 5, kvLen: 5 }),
    "window larger than sequence",
  );
});

Deno.test("explain() counts flops over visited tiles and reports O(tile) scratch for flash", () => {
  const big = tensorDesc([1, 8, 4096, 64]);
  const full = explain(lower(tile({ q: 32, kv: 64 })(attention(big, big, big)), cpuCaps));
  assertEquals(full.flops, 4 * 8 * 4096 * 4096 * 64);
  assert(full.scratchBytes < 64 * 1024 * 4, `scratch ${full.scratchBytes}`);
  const causalPlan = explain(
    lower(compose(mask(causal()), tile({ q: 64, kv: 64 }))(attention(big, big, big)), cpuCaps),
  );
  assert(causalPlan.flops < 0.52 * full.flops && causalPlan.density < 0.52);
  assert(causalPlan.summary.includes("flash (cpu, "));
  assertEquals(kvIdx.op, "var");
});

Deno.test("integer literals beyond 32 bits are floats, so no interpretation wraps them", () => {
  assertEquals(typeOf(lit(2 ** 31 - 1)), "int");
  assertEquals(typeOf(lit(2 ** 32)), "float");
  assert(evaluate(lt(kvIdx, 2 ** 32), { kvIdx: 5 }), "5 < 2^32");
  const table = { values: [] as number[], kinds: [] as ("i" | "f")[] };
  toWgsl("mask_mod", lt(kvIdx, 2 ** 32), table);
  assertEquals(table.kinds, ["f"]);
});

Deno.test("assertPlan() accepts a JSON round trip of a plan and names the first edited field", () => {
  const plan = lower(compose(mask(window(3, 0)), softcap(20))(attention(x, x, x)), cpuCaps);
  const copy = JSON.parse(JSON.stringify(plan));
  assertPlan(copy, cpuCaps);
  assertEquals(explain(copy).summary, explain(plan).summary);
  assertThrows(() => assertPlan({ ...copy, pack: 2 }, cpuCaps), RangeError, "plan.pack must be 1");
  assertThrows(
    () => assertPlan({ ...copy, sizes: { ...copy.sizes, qLen: 17 } }, cpuCaps),
    RangeError,
    "plan.sizes must be",
  );
  assertThrows(
    () => assertPlan({ ...copy, tile: { q: 8, kv: 8 } }, { ...cpuCaps, anyTile: false }),
    UnsupportedSpecError,
    "tile is unsupported",
  );
});
