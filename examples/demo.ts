/**
 * Runs a few attention variants on the `auto` backend (WebGPU when an adapter exists, else CPU)
 * on random data: compiles each first (`prepare()`), then times warm runs with the read back,
 * checks each against a float64 reference, and prints one `explain()` report.
 *
 *     deno task demo
 * @module
 */
import {
  alibi,
  alibiSlopes,
  attention,
  causal,
  compose,
  createBackend,
  explain,
  groupHeads,
  mask,
  softcap,
  type Transform,
  window,
} from "../mod.ts";
import { referenceAttention } from "./_reference.ts";

const backend = await createBackend("auto");
const [batch, heads, kvHeads, n, dim] = [1, 8, 2, 256, 64];
const random = (length: number) => Float32Array.from({ length }, () => Math.random() * 2 - 1);
const qData = random(batch * heads * n * dim);
const kData = random(batch * kvHeads * n * dim);
const vData = random(batch * kvHeads * n * dim);
const q = backend.tensor(qData, [batch, heads, n, dim]);
const k = backend.tensor(kData, [batch, kvHeads, n, dim]);
const v = backend.tensor(vData, [batch, kvHeads, n, dim]);

const variants: [
  string,
  Transform,
  (i: number, j: number) => boolean,
  ((s: number, h: number, i: number, j: number) => number)?,
][] = [
  ["full (GQA 8/2)", groupHeads(), () => true],
  ["causal", compose(groupHeads(), mask(causal())), (i, j) => j <= i],
  [
    "sliding window 64",
    compose(groupHeads(), mask(window(63, 0))),
    (i, j) => j <= i && j >= i - 63,
  ],
  [
    "causal + softcap 5",
    compose(groupHeads(), mask(causal()), softcap(5)),
    (i, j) => j <= i,
    (s) => 5 * Math.tanh(s / 5),
  ],
  [
    "causal + ALiBi",
    compose(groupHeads(), mask(causal()), alibi(alibiSlopes(heads))),
    (i, j) => j <= i,
    (s, h, i, j) => s + alibiSlopes(heads)[h] * (j - i),
  ],
];

const RUNS = 5;

/** Median milliseconds of `RUNS` calls. */
async function medianMs(once: () => Promise<void>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now();
    await once();
    times.push(performance.now() - start);
  }
  return times.sort((a, b) => a - b)[Math.floor(RUNS / 2)];
}

console.log(`backend: ${backend.name}`);
const rows = [];
for (const [name, transform, allowed, modify] of variants) {
  const plan = backend.plan(transform(attention(q, k, v)));
  const compileStart = performance.now();
  await backend.prepare(plan); // compiles the plan's kernels once (nothing to do on the CPU)
  const compileMs = performance.now() - compileStart;
  let got: Float32Array = new Float32Array(0);
  const runMs = await medianMs(async () => {
    const { out } = await backend.run(plan, { q, k, v });
    got = await backend.read(out);
    backend.release(out);
  });
  const ref = referenceAttention({
    q: qData,
    k: kData,
    v: vData,
    batch,
    heads,
    kvHeads,
    n,
    dim,
    allowed,
    modify,
  });
  const error = got.reduce((worst, x, i) => Math.max(worst, Math.abs(x - ref[i])), 0);
  rows.push({
    variant: name,
    shape: `B${batch} H${heads}/${kvHeads} N${n} D${dim}`,
    kernel: plan.family,
    "compile ms": compileMs.toFixed(1),
    "run + read ms": runMs.toFixed(2),
    "max error": error.toExponential(2),
  });
}
console.table(rows);
console.log(
  `compile ms: first-use compilation of the variant's kernels through prepare(), paid once per
  kernel and cached (0 on the CPU, which compiles nothing).
run + read ms: median of ${RUNS} calls of run() and read() once warm: the kernel, the wait for
  it and the copy of \`out\` back into a Float32Array. On a software adapter (llvmpipe) both
  columns measure a CPU emulating a GPU, not a GPU.`,
);
console.log(
  explain(backend.plan(compose(groupHeads(), mask(causal()))(attention(q, k, v)))).summary,
);
backend.dispose();
