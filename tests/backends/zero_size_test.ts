import { assertEquals } from "@std/assert";
import { attention, groupHeads, kernel, type KernelFamily } from "../../core/mod.ts";
import type { Backend } from "../../backends/backend.ts";
import { createCpuBackend } from "../../backends/cpu/mod.ts";
import { gpu } from "../_webgpu.ts";

const cpu = createCpuBackend();
const backends: Backend[] = gpu ? [cpu, gpu] : [cpu];

/** Shapes with a zero-size dimension: batch, heads, query rows, key rows, value dim. */
const cases = [
  { name: "B = 0", q: [0, 2, 3, 8], kv: [0, 1, 4, 8] },
  { name: "H = 0", q: [1, 0, 3, 8], kv: [1, 1, 4, 8] },
  { name: "Nq = 0", q: [1, 2, 0, 8], kv: [1, 1, 4, 8] },
  { name: "Nk = 0", q: [1, 2, 3, 8], kv: [1, 1, 0, 8] },
  { name: "Dv = 0", q: [1, 2, 3, 8], kv: [1, 1, 4, 8], valueDim: 0 },
];

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

for (const b of backends) {
  Deno.test(`${b.name} tensors and runs with a zero-size dimension follow the documented semantics`, async () => {
    for (const c of cases) {
      for (const family of ["flash", "materialized"] as const satisfies KernelFamily[]) {
        const vShape = [...c.kv.slice(0, 3), c.valueDim ?? c.kv[3]];
        const q = b.tensor(new Float32Array(numel(c.q)).fill(0.5), c.q);
        const k = b.tensor(new Float32Array(numel(c.kv)).fill(0.25), c.kv);
        const v = b.tensor(new Float32Array(numel(vShape)).fill(2), vShape);
        const spec = groupHeads()(attention(q, k, v, { lse: true }));
        const { out, lse } = await b.run(b.plan(kernel(family)(spec)), { q, k, v });
        const [o, l] = await b.readMany([out, lse!]);
        const label = `${c.name} ${family}`;
        assertEquals(out.shape, [c.q[0], c.q[1], c.q[2], vShape[3]], label);
        assertEquals(o.length, numel(out.shape), label);
        // Every visible key holds the value 2; with no key at all a row is zeros, lse -Infinity.
        const noKeys = c.kv[2] === 0;
        assertEquals([...new Set(o)], o.length ? [noKeys ? 0 : 2] : [], `${label} out`);
        const expectedLse = noKeys ? -Infinity : 0.5 * 0.25 * 8 / Math.sqrt(8) + Math.log(4);
        for (const x of l) {
          assertEquals(Math.abs(x - expectedLse) < 1e-5 || x === expectedLse, true);
        }
        for (const t of [q, k, v, out, lse!]) b.release(t);
      }
    }
  });
}
