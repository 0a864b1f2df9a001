/**
 * The writer process of the two-process Deno KV test: appends a prompt to a page table and
 * persists every prefix block it filled to the Deno KV store at `Deno.args[0]`.
 * @module
 */
import { DenoKvPageStore, PageTable } from "../../kv/mod.ts";
import { pagePayload, PROMPT, SALT, TABLE } from "./_pages.ts";

const store = await DenoKvPageStore.open(Deno.args[0]);
const table = new PageTable({ ...TABLE, salt: SALT });
const plan = table.append(table.create(), PROMPT);
for (const { key } of plan.filled) await store.put(key, pagePayload(key));
store.close();
console.log(JSON.stringify(plan.filled.map((f) => f.key)));
