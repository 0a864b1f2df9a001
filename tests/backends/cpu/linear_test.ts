import { assert, assertEquals, assertLessOrEqual, assertRejects } from "@std/assert";
import { attention, causal, compose, mask, slice } from "../../../core/mod.ts";
import { linear } from "../../../variants/mod.ts";
import type { Tensor } from "../../../backends/backend.ts";
import { createCpuBackend } from "../../../backends/cpu/mod.ts";
import { linearAttend } from "../../../linear_attend.ts";
import { linearState } from "../../../linear_state.ts";
import { randomData } from "../../_arbitraries.ts";
import { maxAbsError } from "../../_oracle.ts";
import { linearPropertyTests } from "../../_linear_properties.ts";

for (const backend of [createCpuBackend(), createCpuBackend({ kernels: "typescript" })]) {
  linearPropertyTests(backend, `cpu (${backend.caps.engine})`);
}

Deno.test("linear decode one token at a time equals one causal call, with decay", async () => {
  const cpu = createCpuBackend();
  const [heads, n, d] = [2, 9, 4];
  const data = {
    q: randomData(heads * n * d, 1),
    k: randomData(heads * n * d, 2),
    v: randomData(heads * n * d, 3),
  };
  const all = (x: Float32Array) => cpu.tensor(x, [1, heads, n, d]);
  const opts = { featureMap: "elu" as const, causal: true, decay: [0.9, 0.5] };
  const whole = await cpu.read(
    (await linearAttend(cpu, all(data.q), all(data.k), all(data.v), opts)).out,
  );
  const [q, k, v] = [all(data.q), all(data.k), all(data.v)];
  let state = linearState(cpu, linear("elu", { decay: [0.9, 0.5] })(attention(q, k, v)));
  for (let t = 0; t < n; t++) {
    const at = (x: Tensor) => slice(x, 2, t, t + 1);
    const r = await linearAttend(cpu, at(q), at(k), at(v), { ...opts, state });
    state = r.state!;
    const y = await cpu.read(r.out);
    for (let h = 0; h < heads; h++) {
      const want = whole.subarray((h * n + t) * d, (h * n + t + 1) * d);
      assertLessOrEqual(maxAbsError(y.subarray(h * d, (h + 1) * d), want), 1e-5);
    }
  }
  cpu.dispose();
});

Deno.test("a refused linear run leaves the state tensor as it was", async () => {
  const cpu = createCpuBackend();
  const x = cpu.tensor(randomData(2 * 8 * 4, 5), [1, 2, 8, 4]);
  const spec = compose(mask(causal()), linear("elu"))(attention(x, x, x));
  const plan = cpu.plan(spec);
  const { state } = await cpu.run(plan, { q: x, k: x, v: x });
  const before = await cpu.read(state!);
  const other = cpu.tensor(new Float32Array(16), [1, 1, 4, 4]);
  await assertRejects(() => cpu.run(plan, { q: x, k: other, v: x, state }), RangeError, "k.shape");
  await assertRejects(
    () =>
      cpu.run(plan, { q: x, k: x, v: x, state: cpu.tensor(new Float32Array(80), [1, 2, 8, 5]) }),
    RangeError,
    "state.shape must be [1,2,4,5]",
  );
  assertEquals(await cpu.read(state!), before);
  // A valid run from it leaves it unchanged too: runs return new states.
  const next = await cpu.run(plan, { q: x, k: x, v: x, state });
  assert(next.state !== state);
  assertEquals(await cpu.read(state!), before);
  cpu.dispose();
});
