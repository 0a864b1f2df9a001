import { assert, assertEquals, assertLessOrEqual, assertRejects } from "@std/assert";
import { attention, causal, compose, mask, slice } from "../../core/mod.ts";
import { linear, performer } from "../../variants/mod.ts";
import type { Backend, Tensor } from "../../backends/backend.ts";
import { createCpuBackend } from "../../backends/cpu/mod.ts";
import { linearAttend } from "../../linear_attend.ts";
import { linearState } from "../../linear_state.ts";
import { randomData } from "../_arbitraries.ts";
import { maxAbsError } from "../_oracle.ts";
import { gpu } from "../_webgpu.ts";
import { linearPropertyTests } from "../_linear_properties.ts";

const ignore = gpu === undefined;
const cpu = createCpuBackend();

if (gpu) linearPropertyTests(gpu, "webgpu", { scale: 0.5, reference: cpu });

/** Decodes `n` tokens one call each on `backend`, starting from `state`; returns the outputs. */
async function decode(
  backend: Backend,
  data: Record<"q" | "k" | "v", Float32Array>,
  shape: readonly number[],
  state: Tensor,
  opts: Parameters<typeof linearAttend>[4],
) {
  const [, heads, n, d] = shape;
  const all = (x: Float32Array) => backend.tensor(x, shape);
  const [q, k, v] = [all(data.q), all(data.k), all(data.v)];
  const outs = new Float32Array(heads * n * d);
  for (let t = 0; t < n; t++) {
    const at = (x: Tensor) => slice(x, 2, t, t + 1);
    const r = await linearAttend(backend, at(q), at(k), at(v), { ...opts, state });
    state = r.state!;
    const y = await backend.read(r.out);
    for (let h = 0; h < heads; h++) outs.set(y.subarray(h * d, (h + 1) * d), (h * n + t) * d);
  }
  return { outs, state };
}

Deno.test({
  name: "webgpu: linear decode one token at a time equals one causal call (decay, Performer)",
  ignore,
  fn: async () => {
    const shape = [1, 2, 9, 4];
    const data = { q: randomData(72, 1), k: randomData(72, 2), v: randomData(72, 3) };
    for (const featureMap of ["elu", performer({ features: 6, seed: 4 })] as const) {
      const opts = { featureMap, causal: true, decay: [0.9, 0.5] };
      const all = (x: Float32Array) => gpu!.tensor(x, shape);
      const whole = await linearAttend(gpu!, all(data.q), all(data.k), all(data.v), opts);
      const x = all(data.q);
      const empty = linearState(gpu!, linear(featureMap, { decay: 0.9 })(attention(x, x, x)));
      const { outs, state } = await decode(gpu!, data, shape, empty, opts);
      assertLessOrEqual(maxAbsError(outs, await gpu!.read(whole.out)), 1e-5);
      assertLessOrEqual(
        maxAbsError(await gpu!.read(state), await gpu!.read(whole.state!)),
        1e-5,
      );
    }
  },
});

Deno.test({
  name: "webgpu: a state written by the CPU backend goes on on WebGPU, and back",
  ignore,
  fn: async () => {
    const data = { q: randomData(96, 7), k: randomData(96, 8), v: randomData(96, 9) };
    const opts = { featureMap: "elu" as const, causal: true, decay: [0.8, 1] };
    const piece = (x: Float32Array, from: number, to: number) => {
      const out = new Float32Array(2 * (to - from) * 4);
      for (let h = 0; h < 2; h++) {
        out.set(x.subarray((h * 12 + from) * 4, (h * 12 + to) * 4), h * (to - from) * 4);
      }
      return out;
    };
    const on = (b: Backend, from: number, to: number, state?: Tensor) => {
      const t = (x: Float32Array) => b.tensor(piece(x, from, to), [1, 2, to - from, 4]);
      return linearAttend(b, t(data.q), t(data.k), t(data.v), {
        ...opts,
        ...(state ? { state } : {}),
      });
    };
    const whole = await on(cpu, 0, 12);
    const first = await on(cpu, 0, 5);
    const moved = gpu!.tensor(await cpu.read(first.state!), first.state!.shape);
    const second = await on(gpu!, 5, 9, moved);
    const back = cpu.tensor(await gpu!.read(second.state!), second.state!.shape);
    const third = await on(cpu, 9, 12, back);
    assertLessOrEqual(
      maxAbsError(await cpu.read(third.state!), await cpu.read(whole.state!)),
      1e-5,
    );
    const y = await gpu!.read(second.out);
    assertLessOrEqual(maxAbsError(y, piece(await cpu.read(whole.out), 5, 9)), 1e-5);
  },
});

Deno.test({
  name: "webgpu: a strided view as the state reads as its contiguous copy",
  ignore,
  fn: async () => {
    const x = gpu!.tensor(randomData(2 * 8 * 4, 6), [1, 2, 8, 4]);
    const plan = gpu!.plan(compose(mask(causal()), linear("relu"))(attention(x, x, x)));
    const data = randomData(2 * 4 * 5, 11);
    const wide = new Float32Array(2 * 4 * 9);
    for (let r = 0; r < 8; r++) wide.set(data.subarray(r * 5, r * 5 + 5), r * 9 + 2);
    const strided = slice(gpu!.tensor(wide, [1, 2, 4, 9]), 3, 2, 7);
    const contiguous = gpu!.tensor(data, [1, 2, 4, 5]);
    const [a, b] = [
      await gpu!.run(plan, { q: x, k: x, v: x, state: strided }),
      await gpu!.run(plan, { q: x, k: x, v: x, state: contiguous }),
    ];
    assertEquals(await gpu!.read(a.out), await gpu!.read(b.out));
    assertEquals(await gpu!.read(a.state!), await gpu!.read(b.state!));
  },
});

Deno.test({
  name: "webgpu: a refused linear run leaves the state as it was, and runs return new states",
  ignore,
  fn: async () => {
    const x = gpu!.tensor(randomData(2 * 8 * 4, 5), [1, 2, 8, 4]);
    const plan = gpu!.plan(compose(mask(causal()), linear("elu"))(attention(x, x, x)));
    const { state } = await gpu!.run(plan, { q: x, k: x, v: x });
    const before = await gpu!.read(state!);
    const wrong = gpu!.tensor(new Float32Array(80), [1, 2, 8, 5]);
    await assertRejects(
      () => gpu!.run(plan, { q: x, k: x, v: x, state: wrong }),
      RangeError,
      "state.shape must be [1,2,4,5]",
    );
    const f16 = gpu!.tensor(new Float32Array(40), [1, 2, 4, 5], "f16");
    await assertRejects(
      () => gpu!.run(plan, { q: x, k: x, v: x, state: f16 }),
      TypeError,
      "state.dtype must be f32",
    );
    const fewer = gpu!.plan(
      compose(mask(causal()), linear("elu"))(attention(x, slice(x, 2, 0, 4), slice(x, 2, 0, 4))),
    );
    await assertRejects(
      () => gpu!.run(fewer, { q: x, k: slice(x, 2, 0, 4), v: slice(x, 2, 0, 4), state }),
      RangeError,
      "q length must be at most k length (4) with a causal state",
    );
    const next = await gpu!.run(plan, { q: x, k: x, v: x, state });
    assert(next.state !== state);
    assertEquals(await gpu!.read(state!), before);
  },
});

Deno.test({
  name: "webgpu: Performer's matrix is uploaded once per seed and shape, not at every run",
  ignore,
  fn: async () => {
    const queue = gpu!.device.queue;
    const original = queue.writeBuffer;
    let uploads = 0;
    Object.defineProperty(queue, "writeBuffer", {
      configurable: true,
      value: (buffer: GPUBuffer, ...rest: unknown[]) => {
        if (buffer.label.startsWith("performer matrix")) uploads++;
        return (original as (...a: unknown[]) => void).call(queue, buffer, ...rest);
      },
    });
    try {
      const x = gpu!.tensor(randomData(2 * 8 * 4, 5), [1, 2, 8, 4]);
      const featureMap = performer({ features: 6, seed: 1234 });
      for (let i = 0; i < 3; i++) await linearAttend(gpu!, x, x, x, { featureMap, causal: true });
      assertEquals(uploads, 1);
      await linearAttend(gpu!, x, x, x, { featureMap: performer({ features: 6, seed: 99 }) });
      assertEquals(uploads, 2, "another seed is another matrix");
    } finally {
      delete (queue as unknown as Record<string, unknown>).writeBuffer;
    }
  },
});
