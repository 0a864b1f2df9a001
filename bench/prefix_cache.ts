/**
 * Time to first token with a cached prompt prefix (issue 13): a 2,048-token prefix plus a 64-token
 * suffix through one layer of paged attention (append the K/V the cache lacks, causal attention
 * for the uncached queries, read back the last row). Uncached; prefix cached in this process's
 * pool (another sequence had it); prefix loaded from a Deno KV store written by another process.
 *
 *     deno run -A bench/prefix_cache.ts [--backend cpu|webgpu] [out.json]
 * @module
 */
import { createBackend } from "../backends/create_backend.ts";
import { pagedAttend } from "../paged_attend.ts";
import { DenoKvPageStore, KvCache, type PageStore } from "../kv/mod.ts";
import { cacheOptions, kvRows, modelSizes, prompt } from "./_prefix_model.ts";

const kind = Deno.args.includes("--backend")
  ? Deno.args[Deno.args.indexOf("--backend") + 1]
  : "cpu";
const outPath = Deno.args.find((a) => a.endsWith(".json")) ??
  `bench/results/prefix_cache_${kind}.json`;
const backend = await createBackend(kind as "cpu" | "webgpu");
const sizes = modelSizes(backend.name);
const tokens = prompt(backend.name);
const rows: Record<string, unknown>[] = [];

/**
 * Appends what `cache` lacks of the prompt and attends its uncached queries: ms to first token
 * (persisting the new blocks comes after it, and is left out so every run sees the same store).
 */
async function firstToken(cache: KvCache): Promise<{ ms: number; cached: number }> {
  const start = performance.now();
  const seq = cache.create();
  const plan = await cache.reserve(seq, tokens);
  const n = tokens.length - plan.cached;
  const [k, v] = [kvRows(backend, plan.cached, n, 0), kvRows(backend, plan.cached, n, 1)];
  await cache.write(plan, 0, { k, v });
  const q = backend.tensor(new Float32Array(sizes.heads * n * sizes.dim).fill(0.01), [
    1,
    sizes.heads,
    n,
    sizes.dim,
  ]);
  const { out } = await pagedAttend(backend, q, cache, [seq], { causal: true });
  await backend.read(out);
  const ms = performance.now() - start;
  for (const t of [k, v, q, out]) backend.release(t);
  return { ms, cached: plan.cached };
}

async function measure(name: string, make: () => Promise<{ cache: KvCache; store?: PageStore }>) {
  const times: number[] = [];
  let cached = 0;
  for (let i = 0; i < 3; i++) {
    const { cache } = await make();
    const r = await firstToken(cache);
    times.push(r.ms), cached = r.cached;
    cache.dispose();
  }
  const row = {
    case: name,
    backend: backend.name,
    cachedTokens: cached,
    ms: Math.min(...times),
    runs: times,
  };
  rows.push(row);
  console.log(JSON.stringify(row));
}

const options = cacheOptions(backend.name);
await measure("uncached", () => Promise.resolve({ cache: new KvCache(backend, options) }));
await measure("prefix cached in memory", async () => {
  const cache = new KvCache(backend, options);
  const prefix = tokens.slice(0, sizes.prefix);
  const k = kvRows(backend, 0, sizes.prefix, 0), v = kvRows(backend, 0, sizes.prefix, 1);
  await cache.append(cache.create(), prefix, [{ k, v }]);
  backend.release(k), backend.release(v);
  return { cache };
});
const dir = await Deno.makeTempDir();
const path = `${dir}/prefix.kv`;
const writer = new URL("./_prefix_writer.ts", import.meta.url).pathname;
const wrote = await new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", "--unstable-kv", writer, path, backend.name],
}).output();
if (wrote.code !== 0) throw new Error(new TextDecoder().decode(wrote.stderr));
const store = await DenoKvPageStore.open(path);
await measure(
  "prefix from Deno KV (another process)",
  () => Promise.resolve({ cache: new KvCache(backend, { ...options, store }), store }),
);
store.close();
await Deno.remove(dir, { recursive: true });
await Deno.mkdir("bench/results", { recursive: true });
await Deno.writeTextFile(
  outPath,
  JSON.stringify({ device: backend.name, sizes, rows }, null, 2) + "\n",
);
backend.dispose();
