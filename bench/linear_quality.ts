/**
 * How close linear attention comes to softmax attention (issue 14: quality, shown not hidden):
 * each feature map's causal output against causal softmax attention on the same inputs, as the
 * relative error `‖out − softmax‖ / ‖softmax‖` and the worst element, beside each one's time, on
 * any backend (`--backend cpu|webgpu`, default auto). Low-rank (Linformer) rows project keys and
 * values to `k` rows with untrained projections, Gaussian entries of variance `1/k` (Linformer's
 * random-projection baseline; mulberry32 seed 3, Box-Muller), or mean pooling of `Nk/k`
 * consecutive keys, shared by every head; they cannot be causal, so they are compared with
 * non-causal softmax attention.
 *
 *     deno run -A bench/linear_quality.ts [--quick] [--backend cpu] [out.json]
 * @module
 */
import { attend, createBackend, linearAttend } from "../mod.ts";
import { performer } from "../variants/mod.ts";
import { mulberry32 } from "../core/_random.ts";
import type { FeatureMapLike } from "../variants/mod.ts";

const quick = Deno.args.includes("--quick");
const name = Deno.args[Deno.args.indexOf("--backend") + 1];
const outPath = Deno.args.find((a) => a.endsWith(".json")) ?? "bench/results/linear_quality.json";
const backend = await createBackend(Deno.args.includes("--backend") ? name as "cpu" : "auto");
const [heads, n, dim] = [4, quick ? 256 : 2048, 64];
// Inputs as a trained model's tend to be: unit-scale rows, so scores stay in a moderate range.
let seed = 7;
const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
const x = (length: number) => Float32Array.from({ length }, random);
const [q, k, v] = [0, 1, 2].map(() => backend.tensor(x(heads * n * dim), [1, heads, n, dim]));

async function timed<T>(run: () => Promise<T>): Promise<{ result: T; ms: number }> {
  await run();
  const t0 = performance.now();
  const result = await run();
  return { result, ms: performance.now() - t0 };
}

const reference = await timed(async () =>
  await backend.read((await attend(backend, q, k, v, { causal: true })).out)
);
const full = await timed(async () => await backend.read((await attend(backend, q, k, v)).out));

/** Relative and worst error of `result` against `ref`. */
function errors(result: Float32Array, ref: Float32Array) {
  let diff = 0, worst = 0, norm = 0;
  result.forEach((y, i) => {
    const d = y - ref[i];
    diff += d * d, worst = Math.max(worst, Math.abs(d)), norm += ref[i] * ref[i];
  });
  return { relativeError: Math.sqrt(diff / norm), maxAbsError: worst };
}
const maps: [string, FeatureMapLike][] = [
  ["elu(x)+1", "elu"],
  ["relu", "relu"],
  ...[64, 256, 1024].map((m) =>
    [`performer m=${m}`, performer({ features: m, seed: 1, orthogonal: true })] as [
      string,
      FeatureMapLike,
    ]
  ),
];
const rows: Record<string, unknown>[] = [
  {
    map: "softmax (reference)",
    reference: "causal",
    relativeError: 0,
    maxAbsError: 0,
    ms: reference.ms,
  },
];
for (const [label, featureMap] of maps) {
  const { result, ms } = await timed(async () =>
    await backend.read((await linearAttend(backend, q, k, v, { featureMap, causal: true })).out)
  );
  rows.push({ map: label, reference: "causal", ...errors(result, reference.result), ms });
}
rows.push({
  map: "softmax (reference)",
  reference: "non-causal",
  relativeError: 0,
  maxAbsError: 0,
  ms: full.ms,
});
const gaussian = mulberry32(3);
const normal = () => Math.sqrt(-2 * Math.log(1 - gaussian())) * Math.cos(2 * Math.PI * gaussian());
for (const rank of quick ? [16, 64, 128] : [64, 256, 1024]) {
  const e = backend.tensor(
    Float32Array.from({ length: rank * n }, () => normal() / Math.sqrt(rank)),
    [rank, n],
  );
  const { result, ms } = await timed(async () =>
    await backend.read((await attend(backend, q, k, v, { lowRank: { e, f: e } })).out)
  );
  rows.push({
    map: `low-rank k=${rank}`,
    reference: "non-causal",
    ...errors(result, full.result),
    ms,
  });
  // Mean pooling of n/k consecutive keys: the deterministic projection (Linformer's "pooling").
  const pool = backend.tensor(
    Float32Array.from(
      { length: rank * n },
      (_, i) => Math.floor((i % n) * rank / n) === Math.floor(i / n) ? rank / n : 0,
    ),
    [rank, n],
  );
  const pooled = await timed(async () =>
    await backend.read((await attend(backend, q, k, v, { lowRank: { e: pool, f: pool } })).out)
  );
  rows.push({
    map: `low-rank k=${rank} mean-pool`,
    reference: "non-causal",
    ...errors(pooled.result, full.result),
    ms: pooled.ms,
  });
  backend.release(e);
  backend.release(pool);
}
for (const row of rows) {
  console.log(JSON.stringify({ backend: backend.name, heads, n, dim, ...row }));
}
await Deno.writeTextFile(
  outPath,
  JSON.stringify({ backend: backend.name, heads, n, dim, rows }, null, 2) + "\n",
);
backend.dispose();
