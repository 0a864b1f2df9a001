/**
 * Random compositions of the named masks (with and/or, causal, GQA heads, per-head and per-batch
 * parameters, odd sizes) on the CPU and WebGPU backends, against the float64 oracle. The oracle's
 * predicates are written here from each mask's definition, except BigBird's, whose seeded random
 * blocks the oracle reads from the CPU evaluation of the Expr (its layout is checked on its own in
 * big_bird_test.ts).
 * @module
 */
import fc from "fast-check";
import { assertLessOrEqual } from "@std/assert";
import { and, causal, compileExpr, type Expr, or } from "../../core/mod.ts";
import { createCpuBackend } from "../../backends/cpu/mod.ts";
import { MAX_TABLE } from "../../core/_expr_type.ts";
import {
  bigBird,
  blockMask,
  dilatedWindow,
  documents,
  fixedPattern,
  globalTokens,
  prefixLM,
  sinks,
  slidingWindow,
  strided,
} from "../../variants/mod.ts";
import { type MaskCase, oracleCase, problemData, type Shape } from "../_arbitraries.ts";
import { maxAbsError, oracle, tolerance } from "../_oracle.ts";
import { runProblem } from "../_run.ts";
import { gpu } from "../_webgpu.ts";

type Allowed = (b: number, h: number, i: number, j: number, nq: number, nk: number) => boolean;
const pos = (i: number, nq: number, nk: number) => i + nk - nq;
const atom = (name: string, expr: Expr, allowed: Allowed): MaskCase => ({ name, expr, allowed });
const perHead = (heads: number, max: number, min = 1) =>
  fc.oneof(
    fc.integer({ min, max }),
    fc.array(fc.integer({ min, max }), { minLength: heads, maxLength: heads }),
  );
const pick = (x: number | number[], h: number) => Array.isArray(x) ? x[h] : x;
const docOf = (lengths: number[]) => {
  const ids = lengths.flatMap((n, d) => Array<number>(n).fill(d));
  return (p: number) => p >= 0 && p < ids.length ? ids[p] : -1;
};

/** The named masks for a shape, each with its predicate. */
function atoms(s: Shape): fc.Arbitrary<MaskCase> {
  const lengths = fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 4 });
  return fc.oneof(
    fc.constant(atom("causal", causal(), (_b, _h, i, j, nq, nk) => j <= pos(i, nq, nk))),
    perHead(s.heads, 50).map((w) =>
      atom(`slidingWindow(${w})`, slidingWindow(w), (_b, h, i, j, nq, nk) => {
        const d = pos(i, nq, nk) - j;
        return d >= 0 && d < pick(w, h);
      })
    ),
    fc.tuple(perHead(s.heads, 6), perHead(s.heads, 4)).map(([size, dilation]) =>
      atom(
        `dilatedWindow(${size}, ${dilation})`,
        dilatedWindow({ size, dilation }),
        (_b, h, i, j, nq, nk) => {
          const d = pos(i, nq, nk) - j;
          return d >= 0 && d < pick(size, h) * pick(dilation, h) && d % pick(dilation, h) === 0;
        },
      )
    ),
    fc.integer({ min: 1, max: 9 }).chain((block) => fc.tuple(fc.constant(block), fc.nat(block)))
      .map(([block, summary]) =>
        atom(
          `fixedPattern(${block}, ${summary})`,
          fixedPattern({ block, summary }),
          (_b, _h, i, j, nq, nk) =>
            Math.floor(pos(i, nq, nk) / block) === Math.floor(j / block) ||
            j % block >= block - summary,
        )
      ),
    fc.tuple(fc.nat(6), fc.integer({ min: 1, max: 9 })).map(([local, stride]) =>
      atom(`strided(${local}, ${stride})`, strided({ local, stride }), (_b, _h, i, j, nq, nk) => {
        const d = pos(i, nq, nk) - j;
        return Math.abs(d) < local || d % stride === 0;
      })
    ),
    fc.uniqueArray(fc.nat(120), { minLength: 1, maxLength: 5 }).map((g) =>
      atom(
        `globalTokens(${g})`,
        globalTokens(g),
        (_b, _h, i, j, nq, nk) => g.includes(pos(i, nq, nk)) || g.includes(j),
      )
    ),
    perHead(s.heads, 40, 0).map((n) =>
      atom(
        `prefixLM(${n})`,
        prefixLM(n),
        (_b, h, i, j, nq, nk) => j < pick(n, h) || j <= pos(i, nq, nk),
      )
    ),
    perHead(s.heads, 8, 0).map((n) =>
      atom(`sinks(${n})`, sinks(n), (_b, h, i, j, nq, nk) => j < pick(n, h) && j <= pos(i, nq, nk))
    ),
    lengths.map((l) =>
      atom(`documents(${l})`, documents(l), (_b, _h, i, j, nq, nk) => {
        const doc = docOf(l);
        return doc(pos(i, nq, nk)) !== -1 && doc(pos(i, nq, nk)) === doc(j);
      })
    ),
    fc.array(lengths, { minLength: s.batch, maxLength: s.batch }).map((lists) =>
      atom(`documents(${JSON.stringify(lists)})`, documents(lists), (b, _h, i, j, nq, nk) => {
        const doc = docOf(lists[b]);
        return doc(pos(i, nq, nk)) !== -1 && doc(pos(i, nq, nk)) === doc(j);
      })
    ),
    fc.record({
      tileQ: fc.integer({ min: 1, max: 16 }),
      tileKv: fc.integer({ min: 1, max: 16 }),
      shared: fc.boolean(),
    })
      // blockMask() holds at most MAX_TABLE tiles in all.
      .filter(({ tileQ, tileKv, shared }) =>
        Math.ceil(s.qLen / tileQ) * Math.ceil(s.kvLen / tileKv) * (shared ? 1 : s.heads) <=
          MAX_TABLE
      )
      .chain(({ tileQ, tileKv, shared }) => {
        const [rows, cols] = [Math.ceil(s.qLen / tileQ), Math.ceil(s.kvLen / tileKv)];
        const matrix = fc.array(fc.array(fc.boolean(), { minLength: cols, maxLength: cols }), {
          minLength: rows,
          maxLength: rows,
        });
        return fc.array(matrix, {
          minLength: shared ? 1 : s.heads,
          maxLength: shared ? 1 : s.heads,
        }).map((t) =>
          atom(
            `blockMask(${tileQ}x${tileKv}, ${shared ? "shared" : "per head"})`,
            blockMask(shared ? t[0] : t, { tileQ, tileKv }),
            (_b, h, i, j) =>
              t[shared ? 0 : h][Math.floor(i / tileQ)]?.[Math.floor(j / tileKv)] === true,
          )
        );
      }),
    fc.record({
      window: fc.nat(1),
      globals: fc.nat(1),
      randomBlocks: fc.integer({ min: 1, max: 2 }),
      block: fc.integer({ min: 1, max: 16 }),
      seed: fc.integer(),
      length: fc.constant(128),
    })
      .map((o) => {
        const f = compileExpr(bigBird(o));
        return atom(
          `bigBird(${JSON.stringify(o)})`,
          bigBird(o),
          (b, h, i, j, nq, nk) => f({ b, h, qIdx: i, kvIdx: j, qLen: nq, kvLen: nk }) !== 0,
        );
      }),
  );
}

/** An atom, or two combined with and/or. */
function maskArb(s: Shape): fc.Arbitrary<MaskCase> {
  const a = atoms(s);
  return fc.oneof(
    a,
    fc.tuple(a, a, fc.boolean()).map(([x, y, both]) =>
      both
        ? atom(
          `and(${x.name}, ${y.name})`,
          and(x.expr, y.expr),
          (...v) => x.allowed(...v) && y.allowed(...v),
        )
        : atom(
          `or(${x.name}, ${y.name})`,
          or(x.expr, y.expr),
          (...v) => x.allowed(...v) || y.allowed(...v),
        )
    ),
  );
}

const length = fc.oneof(fc.constantFrom(1, 7), fc.integer({ min: 1, max: 48 }), fc.constant(113));
const shapeArb: fc.Arbitrary<Shape> = fc.record({
  batch: fc.integer({ min: 1, max: 2 }),
  kvHeads: fc.integer({ min: 1, max: 2 }),
  group: fc.integer({ min: 1, max: 2 }),
  qLen: length,
  kvLen: length,
  headDim: fc.constantFrom(24, 8, 5),
}).map(({ group, ...s }) => ({ ...s, heads: s.kvHeads * group, valueDim: s.headDim }));

const cpu = createCpuBackend();

async function check(
  backendRuns: (
    s: Shape,
    d: ReturnType<typeof problemData>,
    m: MaskCase,
  ) => Promise<[string, Float32Array, Float32Array][]>,
  numRuns: number,
): Promise<void> {
  await fc.assert(
    fc.asyncProperty(
      shapeArb.chain((s) =>
        fc.tuple(fc.constant(s), maskArb(s), fc.integer({ min: 1, max: 1 << 30 }))
      ),
      async ([s, m, seed]) => {
        const data = problemData(s, seed);
        const c = oracleCase(s, data, 1 / Math.sqrt(s.headDim), m);
        const ref = oracle(c);
        const tol = tolerance(c, ref);
        for (const [name, out, lse] of await backendRuns(s, data, m)) {
          assertLessOrEqual(maxAbsError(out, ref.out), tol, `${name} out, mask ${m.name}`);
          assertLessOrEqual(maxAbsError(lse, ref.lse), 1e-4, `${name} lse, mask ${m.name}`);
        }
      },
    ),
    { numRuns, verbose: true },
  );
}

Deno.test("named masks and their compositions on the cpu backend equal the oracle", async () => {
  await check(async (s, d, m) => {
    const got = await runProblem(cpu, s, d, { mask: m, lse: true });
    return [[`cpu ${got.family}`, got.out, got.lse!]];
  }, 60);
});

Deno.test({
  name:
    "named masks and their compositions on the webgpu backend (flash and materialized) equal the oracle",
  ignore: gpu === undefined,
  fn: async () => {
    await check(async (s, d, m) => {
      const runs: [string, Float32Array, Float32Array][] = [];
      for (const family of ["flash", "materialized"] as const) {
        const got = await runProblem(gpu!, s, d, { mask: m, lse: true, family });
        runs.push([`webgpu ${family}`, got.out, got.lse!]);
      }
      return runs;
    }, 16);
  },
});
