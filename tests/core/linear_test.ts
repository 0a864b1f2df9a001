import fc from "fast-check";
import { assert, assertEquals, assertLess, assertThrows } from "@std/assert";
import {
  assertPlan,
  attention,
  type BackendCaps,
  causal,
  compose,
  explain,
  groupHeads,
  kernel,
  lower,
  mask,
  performerMatrix,
  softcap,
  tensorDesc,
  UnsupportedSpecError,
  window,
} from "../../core/mod.ts";
import { linear, performer } from "../../variants/mod.ts";
import { cpuCaps } from "../../backends/cpu/mod.ts";
import { gpu } from "../_webgpu.ts";
import { ELEMENTWISE_MAPS, performerCase } from "../_linear_oracle.ts";

const x = tensorDesc([1, 2, 256, 16]);
const base = attention(x, x, x);
const causalLinear = (o = {}) => compose(mask(causal()), linear("elu", o))(base);

Deno.test("lower() picks the linear family and chooses a chunk unless one is requested", () => {
  const plan = lower(causalLinear(), cpuCaps);
  assertEquals(plan.family, "linear");
  assertEquals(plan.tile, { q: 64, kv: 64 });
  assertEquals(plan.tileReason, "linear: chunks of 64 keys");
  const requested = lower(causalLinear({ chunk: 7 }), cpuCaps);
  assertEquals(requested.tile, { q: 7, kv: 7 });
  assert(requested.normalizer !== "softmax" && requested.normalizer.chunk === 7);
  const short = attention(
    tensorDesc([1, 1, 5, 4]),
    tensorDesc([1, 1, 5, 4]),
    tensorDesc([1, 1, 5, 4]),
  );
  assertEquals(lower(linear("relu")(short), cpuCaps).tile.kv, 5);
});

Deno.test("linear plans round-trip through JSON and assertPlan, and equal specs give equal keys", () => {
  const maps = [...ELEMENTWISE_MAPS, performerCase(24, 3, true)].map((m) => m.map);
  fc.assert(
    fc.property(
      fc.constantFrom(...maps),
      fc.boolean(),
      fc.option(fc.integer({ min: 1, max: 1024 }), { nil: undefined }),
      fc.option(fc.double({ min: 0.01, max: 1, noNaN: true }), { nil: undefined }),
      fc.boolean(),
      (map, isCausal, chunk, decay, normalize) => {
        const spec = compose(
          ...(isCausal ? [mask(causal())] : []),
          linear(map, { chunk, normalize, ...(isCausal && decay ? { decay } : {}) }),
        )(base);
        const plan = lower(spec, cpuCaps);
        assertPlan(JSON.parse(JSON.stringify(plan)), cpuCaps);
        assertEquals(lower(spec, cpuCaps).key, plan.key);
        if (plan.normalizer === "softmax") throw new Error("linear normalizer");
        const edited = { ...plan, normalizer: { ...plan.normalizer, epsilon: 1 } };
        assertThrows(() => assertPlan(edited, cpuCaps), RangeError, "plan.key must be");
        const zero = { ...plan, normalizer: { ...plan.normalizer, chunk: 0 } };
        assertThrows(() => assertPlan(zero, cpuCaps), RangeError, "normalizer.chunk must be");
      },
    ),
  );
  const a = lower(causalLinear({ decay: 0.5 }), cpuCaps);
  const b = lower(causalLinear({ decay: 0.25 }), cpuCaps);
  assert(a.key !== b.key, "decay is part of the key");
  assert(a.key !== lower(mask(causal())(base), cpuCaps).key);
});

Deno.test("lower() refuses what linear attention cannot combine with, by name", () => {
  const cases: [unknown, string][] = [
    [compose(mask(window(4, 0)), linear("elu"))(base), "mask with linear() is unsupported"],
    [compose(softcap(20), linear("elu"))(base), "scoreMod with linear() is unsupported"],
    [linear("elu")(attention(x, x, x, { lse: true })), "outputs.lse with linear()"],
    [linear("elu", { decay: 0.9 })(base), "decay without a causal mask is unsupported"],
    [compose(linear("elu"), kernel("flash"))(base), "kernel with linear() is unsupported"],
    [kernel("linear")(base), "kernel without linear() is unsupported"],
    [linear(performer({ features: 4, seed: 1 }))(attention(x, x, x, { scale: -1 })), "scale"],
  ];
  for (const [spec, message] of cases) {
    assertThrows(() => lower(spec as never, cpuCaps), UnsupportedSpecError, message);
  }
});

Deno.test("a backend without the linear family refuses linear specs naming the kernel; WebGPU has it", () => {
  const without: BackendCaps = {
    ...cpuCaps,
    backend: "webgpu",
    families: ["materialized", "flash", "hierarchical"],
  };
  assertThrows(
    () => lower(causalLinear(), without),
    UnsupportedSpecError,
    'Cannot run spec on backend "webgpu": kernel is unsupported, current value is linear',
  );
  if (gpu) assertEquals(lower(causalLinear(), gpu.caps).family, "linear");
});

Deno.test("explain() of a linear plan: cost linear in the length, scratch independent of it", () => {
  const at = (n: number, isCausal: boolean) => {
    const d = tensorDesc([1, 2, n, 16]);
    const spec = compose(...(isCausal ? [mask(causal())] : []), linear("elu"))(attention(d, d, d));
    return explain(lower(spec, cpuCaps));
  };
  for (const isCausal of [false, true]) {
    const [short, long] = [at(1024, isCausal), at(4096, isCausal)];
    assertLess(Math.abs(long.flops / short.flops - 4), 0.05);
    assertEquals(long.scratchBytes, short.scratchBytes);
    assert(long.summary.includes(isCausal ? "64-key chunks" : "two passes"), long.summary);
    assertEquals(long.layoutBytes, 0);
  }
  assertLess(Math.abs(at(1024, true).density - 0.5), 0.01);
});

Deno.test("performerMatrix() is fixed by its seed, orthogonal in blocks, and its features estimate exp(q·k·scale)", () => {
  const w = performerMatrix(11, 8, 4, true);
  assertEquals(performerMatrix(11, 8, 4, true), w);
  assert(performerMatrix(12, 8, 4, true).some((v, i) => v !== w[i]), "another seed differs");
  for (let r = 0; r < 4; r++) {
    for (let s = 0; s < r; s++) {
      let dot = 0;
      for (let d = 0; d < 4; d++) dot += w[r * 4 + d] * w[s * 4 + d];
      assertLess(Math.abs(dot), 1e-9);
    }
  }
  const [dim, scale] = [4, 0.5];
  const q = Float64Array.from([0.3, -0.2, 0.5, 0.1]);
  const k = Float64Array.from([-0.1, 0.4, 0.2, -0.3]);
  const phi = performerCase(20000, 5, true).phi(dim, scale);
  const [pq, pk] = [phi(q), phi(k)];
  const estimate = pq.reduce((s, a, f) => s + a * pk[f], 0);
  const exact = Math.exp(scale * q.reduce((s, a, d) => s + a * k[d], 0));
  assertLess(Math.abs(estimate / exact - 1), 0.03);
});

Deno.test("explain() counts a GQA linear plan's key-side work once per KV head, unless decays differ", () => {
  const q = tensorDesc([1, 8, 512, 32]);
  const kv = tensorDesc([1, 2, 512, 32]);
  const flops = (decay: number | number[]) =>
    explain(
      lower(
        compose(groupHeads(), mask(causal()), linear("elu", { decay }))(attention(q, kv, kv)),
        cpuCaps,
      ),
    ).flops;
  const shared = flops(0.9), own = flops([0.9, 0.8, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]);
  // Folding 512 keys into a 32 × 33 state: 2·512·32·33 per state head, 2 state heads against 8.
  assertEquals(own - shared, (8 - 2) * 2 * 512 * 32 * 33);
});
