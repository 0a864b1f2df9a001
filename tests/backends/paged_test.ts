/**
 * Paged attention equals contiguous attention: random ragged batches written into a shuffled
 * pool (its unused slots full of NaN), random block sizes including 1 and sizes that do not
 * divide the lengths, released blocks, GQA, masks, score modifiers, sinks, f16 storage, decode
 * and prefill query counts, and key splits; each sequence checked against the float64 oracle.
 * @module
 */
import fc from "fast-check";
import { assert, assertLessOrEqual, assertRejects } from "@std/assert";
import {
  attention,
  compose,
  groupHeads,
  lower,
  mask,
  page,
  scoreMod,
  sinkLogits,
  tensorDesc,
  type Transform,
} from "../../core/mod.ts";
import { createCpuBackend } from "../../backends/cpu/mod.ts";
import type { Backend } from "../../backends/backend.ts";
import {
  type MaskCase,
  maskCase,
  prng,
  randomData,
  type ScoreModCase,
  scoreModCase,
} from "../_arbitraries.ts";
import { maxAbsError, oracle, tolerance } from "../_oracle.ts";
import { roundF16 } from "../_run.ts";
import { gpu } from "../_webgpu.ts";

interface PagedCase {
  readonly kvHeads: number;
  readonly group: number;
  readonly headDim: number;
  readonly valueDim: number;
  readonly blockSize: number;
  readonly qLen: number;
  readonly lengths: readonly number[];
  readonly asked: readonly number[];
  readonly release: boolean;
  readonly dtype: "f32" | "f16";
  readonly seed: number;
  readonly mask?: MaskCase;
  readonly scoreMod?: ScoreModCase;
  readonly sinks: boolean;
}

const pagedCase: fc.Arbitrary<PagedCase> = fc.record({
  kvHeads: fc.integer({ min: 1, max: 2 }),
  group: fc.integer({ min: 1, max: 3 }),
  headDim: fc.constantFrom(1, 3, 8, 24),
  valueDim: fc.constantFrom(1, 4, 8, 24),
  blockSize: fc.constantFrom(1, 2, 3, 5, 8, 16),
  qLen: fc.constantFrom(1, 1, 2, 4, 7, 20),
  lengths: fc.array(fc.integer({ min: 0, max: 70 }), { minLength: 1, maxLength: 3 }),
  askedSeed: fc.nat(),
  release: fc.boolean(),
  dtype: fc.constantFrom("f32" as const, "f16" as const),
  seed: fc.nat(1000),
  mask: fc.option(maskCase, { nil: undefined }),
  scoreMod: fc.option(scoreModCase, { nil: undefined }),
  sinks: fc.boolean(),
}).map(({ askedSeed, ...c }) => {
  const random = prng(askedSeed);
  const asked = c.lengths.map((n) => Math.floor(random() * (Math.min(c.qLen, n) + 1)));
  return { ...c, asked };
});

/** A pool holding the case's sequences in shuffled blocks, NaN everywhere else. */
function buildPool(c: PagedCase) {
  const random = prng(c.seed + 7);
  const blocksOf = c.lengths.map((n) => Math.ceil(n / c.blockSize));
  const maxBlocks = Math.max(1, ...blocksOf);
  const numBlocks = blocksOf.reduce((a, b) => a + b, 0) + 3;
  const ids = Array.from({ length: numBlocks }, (_, i) => i).sort(() => random() - 0.5);
  const tables = new Int32Array(c.lengths.length * maxBlocks).fill(-1);
  let next = 0;
  blocksOf.forEach((n, s) => {
    for (let i = 0; i < n; i++) tables[s * maxBlocks + i] = ids[next++];
  });
  // Release the first block of the first sequence with more than one (a window's old keys).
  const released = c.release ? blocksOf.findIndex((n) => n > 1) : -1;
  if (released >= 0) tables[released * maxBlocks] = -1;
  const row = (d: number) => c.kvHeads * d;
  const kPool = new Float32Array(numBlocks * c.blockSize * row(c.headDim)).fill(NaN);
  const vPool = new Float32Array(numBlocks * c.blockSize * row(c.valueDim)).fill(NaN);
  const keys: Float32Array[] = [], values: Float32Array[] = [];
  c.lengths.forEach((n, s) => {
    const round = (x: Float32Array) => c.dtype === "f16" ? roundF16(x) : x;
    const k = round(randomData(c.kvHeads * n * c.headDim, c.seed + 10 * s));
    const v = round(randomData(c.kvHeads * n * c.valueDim, c.seed + 10 * s + 1));
    keys.push(k), values.push(v);
    for (let j = 0; j < n; j++) {
      const block = tables[s * maxBlocks + Math.floor(j / c.blockSize)];
      if (block < 0) continue;
      const slot = block * c.blockSize + (j % c.blockSize);
      for (let h = 0; h < c.kvHeads; h++) {
        for (let d = 0; d < c.headDim; d++) {
          kPool[(slot * c.kvHeads + h) * c.headDim + d] = k[(h * n + j) * c.headDim + d];
        }
        for (let d = 0; d < c.valueDim; d++) {
          vPool[(slot * c.kvHeads + h) * c.valueDim + d] = v[(h * n + j) * c.valueDim + d];
        }
      }
    }
  });
  return { tables, maxBlocks, numBlocks, kPool, vPool, keys, values };
}

async function check(backend: Backend, c: PagedCase, parallelism?: number): Promise<number> {
  const heads = c.kvHeads * c.group, batch = c.lengths.length;
  const pool = buildPool(c);
  const qData = c.dtype === "f16"
    ? roundF16(randomData(batch * heads * c.qLen * c.headDim, c.seed + 99))
    : randomData(batch * heads * c.qLen * c.headDim, c.seed + 99);
  const q = backend.tensor(qData, [batch, heads, c.qLen, c.headDim], c.dtype);
  const k = backend.tensor(
    pool.kPool,
    [pool.numBlocks, c.blockSize, c.kvHeads, c.headDim],
    c.dtype,
  );
  const v = backend.tensor(
    pool.vPool,
    [pool.numBlocks, c.blockSize, c.kvHeads, c.valueDim],
    c.dtype,
  );
  const sinks = Array.from({ length: heads }, (_, h) => 0.3 * h - 0.2);
  const logical = (d: number) =>
    tensorDesc([batch, c.kvHeads, pool.maxBlocks * c.blockSize, d], c.dtype);
  const transforms: Transform[] = [groupHeads()];
  if (c.mask) transforms.push(mask(c.mask.expr));
  if (c.scoreMod) transforms.push(scoreMod(c.scoreMod.expr));
  if (c.sinks) transforms.push(sinkLogits(sinks));
  transforms.push(page({ k, v }));
  const spec = compose(...transforms)(
    attention(q, logical(c.headDim), logical(c.valueDim), { lse: true }),
  );
  const plan = parallelism ? lower(spec, { ...backend.caps, parallelism }) : backend.plan(spec);
  const result = await backend.run(plan, {
    q,
    k,
    v,
    pages: { tables: pool.tables, lengths: c.lengths, queryLengths: c.asked },
  });
  const [out, lse] = await backend.readMany([result.out, result.lse!]);
  for (const t of [q, k, v, result.out, result.lse!]) backend.release(t);
  const scale = c.headDim > 0 ? 1 / Math.sqrt(c.headDim) : 1;
  c.lengths.forEach((n, s) => {
    const rows = c.asked[s];
    const qs = new Float32Array(heads * rows * c.headDim);
    for (let h = 0; h < heads; h++) {
      const from = ((s * heads + h) * c.qLen) * c.headDim;
      qs.set(qData.subarray(from, from + rows * c.headDim), h * rows * c.headDim);
    }
    const held = (j: number) => pool.tables[s * pool.maxBlocks + Math.floor(j / c.blockSize)] >= 0;
    const problem = {
      batch: 1,
      heads,
      kvHeads: c.kvHeads,
      qLen: rows,
      kvLen: n,
      headDim: c.headDim,
      valueDim: c.valueDim,
      q: qs,
      k: pool.keys[s],
      v: pool.values[s],
      scale,
      allowed: (_b: number, h: number, i: number, j: number) =>
        held(j) && (!c.mask || c.mask.allowed(s, h, i, j, rows, n)),
      modify: c.scoreMod &&
        ((x: number, _b: number, h: number, i: number, j: number) =>
          c.scoreMod!.modify(x, s, h, i, j)),
      sinks: c.sinks ? sinks : undefined,
    };
    const ref = oracle(problem);
    const tol = tolerance(problem, ref) * (c.dtype === "f16" ? 1 : 1) +
      (c.dtype === "f16" ? 4e-3 : 0);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < c.qLen; i++) {
        const row = (s * heads + h) * c.qLen + i;
        const got = out.subarray(row * c.valueDim, (row + 1) * c.valueDim);
        const emptyLse = c.sinks ? sinks[h] : -Infinity;
        if (i >= rows) {
          assert(got.every((x) => x === 0), `padding row ${s}/${h}/${i} is zero`);
          assert(
            Math.abs(lse[row] - emptyLse) < 1e-6 || lse[row] === emptyLse,
            `padding lse ${lse[row]}`,
          );
          continue;
        }
        const want = ref.out.subarray((h * rows + i) * c.valueDim, (h * rows + i + 1) * c.valueDim);
        const err = maxAbsError(got, want);
        assertLessOrEqual(err, tol, `seq ${s} head ${h} row ${i}: ${err} > ${tol}`);
        const wantLse = ref.lse[h * rows + i];
        assert(
          wantLse === lse[row] || Math.abs(wantLse - lse[row]) <= 1e-3 * (1 + Math.abs(wantLse)),
          `lse seq ${s} head ${h} row ${i}: ${lse[row]} vs ${wantLse}`,
        );
      }
    }
  });
  return plan.splits;
}

Deno.test("cpu paged attention equals the oracle on each sequence of a ragged batch", async () => {
  const backend = createCpuBackend({ kernels: "typescript" });
  await fc.assert(fc.asyncProperty(pagedCase, async (c) => void await check(backend, c)), {
    numRuns: 60,
  });
  backend.dispose();
});

Deno.test({
  name: "webgpu paged attention equals the oracle, with and without key splits",
  ignore: gpu === undefined,
  fn: async () => {
    await fc.assert(
      fc.asyncProperty(
        pagedCase,
        fc.constantFrom(undefined, 64, 512),
        (c, parallelism) => check(gpu!, c, parallelism).then(() => {}),
      ),
      { numRuns: 4 },
    );
  },
});

Deno.test("a paged run refuses bad block tables and lengths before any work", async () => {
  const backend = createCpuBackend();
  const q = backend.tensor(new Float32Array(8), [1, 2, 1, 4]);
  const pool = backend.tensor(new Float32Array(4 * 2 * 1 * 4), [4, 2, 1, 4]);
  const spec = compose(groupHeads(), page({ k: pool, v: pool }))(
    attention(q, tensorDesc([1, 1, 6, 4]), tensorDesc([1, 1, 6, 4])),
  );
  const plan = backend.plan(spec);
  const run = (pages: unknown) => () => backend.run(plan, { q, k: pool, v: pool, pages } as never);
  const assertThrows = (fn: () => Promise<unknown>, kind: new (m: string) => Error, text: string) =>
    assertRejects(fn, kind, text);
  await assertThrows(run(undefined), TypeError, "pages must be { tables, lengths, queryLengths? }");
  await assertThrows(
    run({ tables: [0, 1], lengths: [3] }),
    RangeError,
    "pages.tables.length must be 3",
  );
  await assertThrows(
    run({ tables: [0, 1, 4], lengths: [3] }),
    RangeError,
    "pages.tables[2] must be an integer in -1..3",
  );
  await assertThrows(
    run({ tables: [0, 1, 2], lengths: [7] }),
    RangeError,
    "pages.lengths[0] must be an integer in 0..6",
  );
  await assertThrows(
    run({ tables: [0, 1, 2], lengths: [3], queryLengths: [2] }),
    RangeError,
    "pages.queryLengths[0] must be an integer in 0..1",
  );
  backend.dispose();
});
