/**
 * CPU flash on the WebAssembly micro-kernels against numpy in the same run (when python3 with
 * numpy is on the PATH): f32 B1 H8 D64 at N = 1024 and 4096, causal and not, on one and two
 * threads; the TypeScript reference at N = 1024; a decode step (one query, KV 4096, GQA 8/2, D64)
 * in tokens per second through the public API; and the first run's time on a fresh backend.
 *
 *   deno run -A bench/cpu_flash.ts [out.json]
 * @module
 */
import { attention, causal, compose, groupHeads, mask } from "../core/mod.ts";
import { cpuCaps, createCpuBackend } from "../backends/cpu/mod.ts";
import type { Backend } from "../backends/backend.ts";

const HEADS = 8, DIM = 64;

function random(length: number, seed: number): Float32Array {
  let x = seed;
  return Float32Array.from(
    { length },
    () => ((x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5,
  );
}

/** Best of `reps` runs after `warmup` (V8 compiles WebAssembly with a baseline tier first). */
async function best(fn: () => Promise<unknown>, reps: number, warmup = 2): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  let ms = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    ms = Math.min(ms, performance.now() - t0);
  }
  return ms;
}

async function flashMs(cpu: Backend, n: number, isCausal: boolean, reps: number, warmup = 2) {
  const x = cpu.tensor(random(HEADS * n * DIM, n), [1, HEADS, n, DIM]);
  const spec = isCausal ? mask(causal())(attention(x, x, x)) : attention(x, x, x);
  const plan = cpu.plan(spec);
  const ms = await best(
    async () => {
      const { out } = await cpu.run(plan, { q: x, k: x, v: x });
      cpu.release(out);
    },
    reps,
    warmup,
  );
  cpu.release(x);
  return ms;
}

function numpyBaseline(): {
  numpy: string;
  attention: { n: number; causal: boolean; ms: number }[];
  matmulGflops: number;
} | undefined {
  try {
    const script = new URL("./numpy_attention.py", import.meta.url).pathname;
    const { code, stdout } = new Deno.Command("python3", { args: [script, "1024", "4096"] })
      .outputSync();
    return code === 0 ? JSON.parse(new TextDecoder().decode(stdout)) : undefined;
  } catch {
    return undefined;
  }
}

const flops = (n: number, isCausal: boolean) =>
  4 * HEADS * n * n * DIM * (isCausal ? (n + 1) / (2 * n) : 1);

const firstUse = await (async () => {
  const cpu = createCpuBackend({ threads: 1 });
  const ms = await flashMs(cpu, 1024, false, 1, 0);
  cpu.dispose();
  return ms;
})();

const rows = [];
const backends = [1, 2].map((threads) => createCpuBackend({ threads }));
for (const n of [1024, 4096]) {
  for (const isCausal of [false, true]) {
    const reps = n <= 1024 ? 7 : 3;
    const [one, two] = [
      await flashMs(backends[0], n, isCausal, reps),
      await flashMs(backends[1], n, isCausal, reps),
    ];
    rows.push({ n, causal: isCausal, oneThreadMs: one, twoThreadsMs: two });
  }
}
backends.forEach((b) => b.dispose());

const reference = createCpuBackend({ kernels: "typescript" });
const typescriptMs = {
  full: await flashMs(reference, 1024, false, 1, 0),
  causal: await flashMs(reference, 1024, true, 1, 0),
};

// Decode: one query per head against 4096 cached keys, read back as a user would.
const decode = await (async () => {
  const cpu = createCpuBackend();
  const q = cpu.tensor(random(HEADS * DIM, 1), [1, HEADS, 1, DIM]);
  const k = cpu.tensor(random(2 * 4096 * DIM, 2), [1, 2, 4096, DIM]);
  const v = cpu.tensor(random(2 * 4096 * DIM, 3), [1, 2, 4096, DIM]);
  const plan = cpu.plan(compose(groupHeads())(attention(q, k, v)));
  const ms = await best(
    async () => {
      const { out } = await cpu.run(plan, { q, k, v });
      await cpu.read(out);
      cpu.release(out);
    },
    50,
    20,
  );
  cpu.dispose();
  return { family: plan.family, ms, tokensPerSecond: 1000 / ms };
})();

const numpy = numpyBaseline();
const result = {
  date: new Date().toISOString().slice(0, 10),
  deno: Deno.version.deno,
  cores: navigator.hardwareConcurrency,
  engine: cpuCaps.engine,
  firstUseMs: firstUse,
  rows,
  typescriptMs,
  decode,
  numpy,
};

console.log(
  `CPU flash, f32 B1 H${HEADS} D${DIM}, ${cpuCaps.engine}, ${result.cores} cores, Deno ${result.deno}`,
);
console.log(
  "| N | mask | 1 thread ms | GFLOP/s | 2 threads ms | GFLOP/s | scaling | numpy ms | numpy time / ours (2 threads) |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const r of rows) {
  const np = numpy?.attention.find((a) => a.n === r.n && a.causal === r.causal)?.ms;
  const f = flops(r.n, r.causal) / 1e6;
  console.log(
    `| ${r.n} | ${r.causal ? "causal" : "none"} | ${r.oneThreadMs.toFixed(1)} | ${
      (f / r.oneThreadMs).toFixed(1)
    } | ${r.twoThreadsMs.toFixed(1)} | ${(f / r.twoThreadsMs).toFixed(1)} | ${
      (r.oneThreadMs / r.twoThreadsMs).toFixed(2)
    }× | ${np?.toFixed(1) ?? "-"} | ${np ? (np / r.twoThreadsMs).toFixed(2) + "×" : "-"} |`,
  );
}
console.log(
  `numpy ${numpy?.numpy ?? "absent"}: float32 matmul ${
    numpy?.matmulGflops.toFixed(1) ?? "-"
  } GFLOP/s`,
);
console.log(
  `TypeScript reference at N1024: ${typescriptMs.full.toFixed(0)} ms (none), ${
    typescriptMs.causal.toFixed(0)
  } ms (causal)`,
);
console.log(
  `decode (${decode.family}, KV 4096, GQA 8/2, D64, run + read): ${decode.ms.toFixed(2)} ms, ${
    decode.tokensPerSecond.toFixed(0)
  } tokens/s`,
);
console.log(
  `first run on a fresh backend (N1024, compile + baseline tier): ${firstUse.toFixed(1)} ms`,
);
if (Deno.args[0]) await Deno.writeTextFile(Deno.args[0], JSON.stringify(result, null, 2) + "\n");
