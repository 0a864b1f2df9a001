/**
 * CPU flash (tiled) vs materialized at N = 256, 1024, 4096 (H = 8, D = 64): `deno task bench`.
 * The 4096 cases are single runs; they take tens of seconds each.
 * @module
 */
import { attention, kernel } from "../core/mod.ts";
import { createCpuBackend } from "../backends/cpu/mod.ts";

const cpu = createCpuBackend();
const [heads, dim] = [8, 64];

for (const n of [256, 1024, 4096]) {
  const data = Float32Array.from({ length: heads * n * dim }, (_, i) => Math.sin(i * 0.37));
  const x = cpu.tensor(data, [1, heads, n, dim]);
  const spec = attention(x, x, x);
  const flash = cpu.plan(kernel("flash")(spec));
  const materialized = cpu.plan(kernel("materialized")(spec));
  const options = n >= 4096 ? { n: 1, warmup: 0 } : n >= 1024 ? { n: 3, warmup: 1 } : {};
  const group = `N=${n}`;
  Deno.bench({
    name: `materialized N=${n}`,
    group,
    baseline: true,
    ...options,
    fn: async () => {
      await cpu.run(materialized, { q: x, k: x, v: x });
    },
  });
  Deno.bench({
    name: `flash N=${n}`,
    group,
    ...options,
    fn: async () => {
      await cpu.run(flash, { q: x, k: x, v: x });
    },
  });
}
