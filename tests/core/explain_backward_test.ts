import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  attention,
  causal,
  compose,
  explain,
  explainBackward,
  lower,
  mask,
  page,
  tensorDesc,
  UnsupportedSpecError,
  window,
} from "../../core/mod.ts";
import { linear } from "../../variants/mod.ts";
import { cpuCaps } from "../../backends/cpu/mod.ts";

const softmaxPlan = (n: number, ...masks: ReturnType<typeof causal>[]) => {
  const x = tensorDesc([1, 4, n, 64]);
  return lower(compose(...masks.map(mask))(attention(x, x, x)), cpuCaps);
};

Deno.test("explainBackward() counts FlashAttention-2's five products: 2.5x the forward at D = Dv, fewer where the mask skips tiles", () => {
  const full = softmaxPlan(1024);
  assertEquals(explainBackward(full).flops, 2.5 * explain(full).flops);
  const causalPlan = softmaxPlan(1024, causal());
  assert(explainBackward(causalPlan).flops < 0.6 * explainBackward(full).flops);
  const windowed = softmaxPlan(4096, window(128, 0));
  assert(explainBackward(windowed).flops < 0.1 * explainBackward(softmaxPlan(4096)).flops);
  // Dv != D: 2·(3D + 2Dv) per pair against the forward's 2·(D + Dv).
  const q = tensorDesc([1, 1, 256, 32]), v = tensorDesc([1, 1, 256, 96]);
  const plan = lower(attention(q, q, v), cpuCaps);
  assertEquals(explainBackward(plan).flops, explain(plan).flops * (3 * 32 + 2 * 96) / 128);
  assert(explainBackward(full).summary.includes("backward"), explainBackward(full).summary);
});

Deno.test("explainBackward() reports scratch linear in N, never Nq x Nk, for softmax and linear plans", () => {
  const ratio = (make: (n: number) => ReturnType<typeof lower>) =>
    explainBackward(make(8192)).scratchBytes / explainBackward(make(4096)).scratchBytes;
  const flash = (n: number) => {
    const x = tensorDesc([1, 8, n, 64]);
    const plan = lower(mask(causal())(attention(x, x, x)), cpuCaps);
    assertEquals(plan.family, "flash");
    return plan;
  };
  const lin = (n: number) => {
    const x = tensorDesc([1, 8, n, 64]);
    return lower(compose(mask(causal()), linear("elu"))(attention(x, x, x)), cpuCaps);
  };
  for (const [name, make] of [["flash", flash], ["linear", lin]] as const) {
    const r = ratio(make);
    assert(r > 1.5 && r < 2.5, `${name}: scratch grew ${r}x when N doubled`);
  }
  // Linear attention's FLOPs grow linearly too.
  const f = explainBackward(lin(8192)).flops / explainBackward(lin(4096)).flops;
  assert(f > 1.9 && f < 2.1, `linear flops grew ${f}x`);
});

Deno.test("explainBackward() refuses what vjp() cannot differentiate, naming the family", () => {
  const x = tensorDesc([1, 2, 16, 8]);
  const pool = tensorDesc([4, 16, 2, 8]);
  const paged = lower(page({ k: pool, v: pool })(attention(x, x, x)), cpuCaps);
  assertThrows(() => explainBackward(paged), UnsupportedSpecError, "paged");
});
