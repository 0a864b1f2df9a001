/**
 * The CPU backend's linear-attention backward pass against the float64 reference.
 * @module
 */
import { assertEquals } from "@std/assert";
import { attention, causal, compose, mask } from "../../../core/mod.ts";
import { linear } from "../../../variants/mod.ts";
import { createBackend } from "../../../backends/create_backend.ts";
import { attendVjp } from "../../../attend_vjp.ts";
import { vjp } from "../../../vjp.ts";
import { linearBackwardTests } from "../../_linear_backward_properties.ts";

const cpu = await createBackend("cpu");
linearBackwardTests(cpu, "cpu", 150);

Deno.test("attendVjp() with a linear() transform gives vjp()'s gradients, dDecay included", async () => {
  const data = (seed: number) =>
    Float32Array.from({ length: 2 * 9 * 4 }, (_, i) => Math.sin(i * seed));
  const [q, k, v] = [1, 2, 3].map((s) => cpu.tensor(data(s), [1, 2, 9, 4]));
  const phi = linear("elu", { decay: [0.9, 0.7], chunk: 4 });
  const viaAttend = await attendVjp(cpu, q, k, v, { causal: true, transforms: [phi] });
  const viaVjp = await vjp(cpu, compose(mask(causal()), phi)(attention(q, k, v)), { q, k, v });
  assertEquals(viaAttend.lse, undefined);
  const dOut = cpu.tensor(data(4), [1, 2, 9, 4]);
  const [a, b] = [await viaAttend.backward(dOut), await viaVjp.backward(dOut)];
  assertEquals(a.dDecay, b.dDecay);
  assertEquals(a.dDecay?.length, 2);
  for (const g of ["dq", "dk", "dv"] as const) {
    assertEquals(await cpu.read(a[g]), await cpu.read(b[g]), g);
  }
});
