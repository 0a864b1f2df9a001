/**
 * Paged KV memory (issue 13): the waste of 1,000 sequences whose lengths follow a long-tailed
 * (log-normal) distribution, and how many such sequences fit a fixed KV budget paged versus
 * preallocated at the maximum length. Pure page-table bookkeeping: no device needed.
 *
 *     deno run -A bench/kv_memory.ts [out.json]
 * @module
 */
import { mulberry32 } from "../core/_random.ts";
import { PageTable } from "../kv/mod.ts";
import { OutOfBlocksError } from "../core/mod.ts";

const outPath = Deno.args.find((a) => a.endsWith(".json")) ?? "bench/results/kv_memory.json";
const MAX_LEN = 32768, SEQUENCES = 1000;
/** Log-normal lengths: median e^6 ≈ 403 tokens, σ = 1.2, in 1 … 32768. */
function lengths(count: number, seed: number): number[] {
  const random = mulberry32(seed);
  return Array.from({ length: count }, () => {
    const gauss = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    return Math.max(1, Math.min(MAX_LEN, Math.round(Math.exp(6 + 1.2 * gauss))));
  });
}

const rows: Record<string, unknown>[] = [];
const sample = lengths(SEQUENCES, 1);
const total = sample.reduce((a, b) => a + b, 0);
for (const blockSize of [1, 8, 16, 32]) {
  const table = new PageTable({
    numBlocks: Math.ceil(total / blockSize) + SEQUENCES,
    blockSize,
    kvHeads: 8,
    headDim: 128,
    dtype: "f16",
    prefixCaching: false,
  });
  // Distinct token ids per sequence: no prefix sharing flatters the figure.
  sample.forEach((n, s) =>
    table.append(table.create(), Array.from({ length: n }, (_, i) => s + i))
  );
  const stats = table.stats();
  const allocated = stats.tokens + stats.waste;
  // A fixed budget (the sample's own KV at this block size), filled with fresh sequences.
  const budget = new PageTable({
    numBlocks: Math.ceil(total / blockSize / 4),
    blockSize,
    kvHeads: 8,
    headDim: 128,
    dtype: "f16",
    prefixCaching: false,
  });
  let fit = 0;
  for (const n of lengths(100000, 2)) {
    try {
      budget.append(budget.create(), Array.from({ length: n }, (_, i) => i + fit));
      fit++;
    } catch (e) {
      if (e instanceof OutOfBlocksError) break;
      throw e;
    }
  }
  const contiguous = Math.floor((budget.stats().numBlocks * blockSize) / MAX_LEN);
  rows.push({
    blockSize,
    sequences: SEQUENCES,
    tokens: stats.tokens,
    wastePercent: (100 * stats.waste) / allocated,
    budgetSlots: budget.stats().numBlocks * blockSize,
    pagedSequences: fit,
    contiguousSequences: contiguous,
    ratio: fit / Math.max(1, contiguous),
  });
  console.log(JSON.stringify(rows.at(-1)));
}
await Deno.mkdir("bench/results", { recursive: true });
await Deno.writeTextFile(outPath, JSON.stringify({ rows }, null, 2) + "\n");
