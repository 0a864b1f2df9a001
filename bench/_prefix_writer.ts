/**
 * The other process of the prefix-cache benchmark: fills a cache with the prompt's prefix and
 * persists its full blocks to the Deno KV store at `Deno.args[0]`, then exits.
 *
 *     deno run -A bench/_prefix_writer.ts <kv path> <cpu|webgpu>
 * @module
 */
import { createBackend } from "../backends/create_backend.ts";
import { DenoKvPageStore, KvCache } from "../kv/mod.ts";
import { cacheOptions, kvRows, modelSizes, prompt } from "./_prefix_model.ts";

const [path, kind] = Deno.args;
const backend = await createBackend(kind as "cpu" | "webgpu");
const store = await DenoKvPageStore.open(path);
const cache = new KvCache(backend, { ...cacheOptions(backend.name), store });
const { prefix } = modelSizes(backend.name);
const k = kvRows(backend, 0, prefix, 0), v = kvRows(backend, 0, prefix, 1);
await cache.append(cache.create(), prompt(backend.name).slice(0, prefix), [{ k, v }]);
cache.dispose();
store.close();
backend.dispose();
