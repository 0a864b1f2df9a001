/**
 * How close linear attention comes to softmax attention (issue 14: quality, shown not hidden):
 * each feature map's causal output against causal softmax attention on the same inputs, as the
 * relative error `‖out − softmax‖ / ‖softmax‖` and the worst element, beside each one's time, on
 * any backend (`--backend cpu|webgpu`, default auto).
 *
 *     deno run -A bench/linear_quality.ts [--quick] [--backend cpu] [out.json]
 * @module
 */
import { attend, createBackend, linearAttend } from "../mod.ts";
import { performer } from "../variants/mod.ts";
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
const norm = Math.sqrt(reference.result.reduce((s, y) => s + y * y, 0));
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
const rows: Record<string, unknown>[] = [{
  map: "softmax (reference)",
  relativeError: 0,
  maxAbsError: 0,
  ms: reference.ms,
}];
for (const [label, featureMap] of maps) {
  const { result, ms } = await timed(async () =>
    await backend.read((await linearAttend(backend, q, k, v, { featureMap, causal: true })).out)
  );
  let diff = 0, worst = 0;
  result.forEach((y, i) => {
    const d = y - reference.result[i];
    diff += d * d, worst = Math.max(worst, Math.abs(d));
  });
  rows.push({ map: label, relativeError: Math.sqrt(diff) / norm, maxAbsError: worst, ms });
}
for (const row of rows) {
  console.log(JSON.stringify({ backend: backend.name, heads, n, dim, ...row }));
}
await Deno.writeTextFile(
  outPath,
  JSON.stringify({ backend: backend.name, heads, n, dim, rows }, null, 2) + "\n",
);
backend.dispose();
