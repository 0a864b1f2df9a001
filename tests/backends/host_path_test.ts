import fc from "fast-check";
import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  attention,
  broadcast,
  causal,
  type DType,
  mask,
  permute,
  slice,
  type TensorDesc,
  tensorDesc,
} from "../../core/mod.ts";
import type { Backend, Tensor } from "../../backends/backend.ts";
import { createCpuBackend } from "../../backends/cpu/mod.ts";
import { createWebGpuBackend } from "../../backends/webgpu/mod.ts";
import { gpu } from "../_webgpu.ts";

const cpu = createCpuBackend();
const backends: Backend[] = gpu ? [cpu, gpu] : [cpu];

/** The elements a view addresses, one at a time: the reference the reads must equal. */
function gatherOneByOne(data: ArrayLike<number>, d: TensorDesc): number[] {
  const out: number[] = [];
  const visit = (dim: number, at: number) => {
    if (dim === d.shape.length) return void out.push(data[at]);
    for (let i = 0; i < d.shape[dim]; i++) visit(dim + 1, at + i * d.strides[dim]);
  };
  visit(0, d.offset);
  return out;
}

/** A rank-4 tensor's data, a view of it (by permute, slice and broadcast) and its dtype. */
const viewCase = fc.record({
  shape: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 4, maxLength: 4 }),
  axes: fc.shuffledSubarray([0, 1, 2, 3], { minLength: 4, maxLength: 4 }),
  sliceDim: fc.integer({ min: 0, max: 3 }),
  sliceFrom: fc.nat(),
  sliceTo: fc.nat(),
  broadcastDim: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
  dtype: fc.constantFrom<DType>("f32", "f16"),
  seed: fc.integer(),
});

type ViewCase = typeof viewCase extends fc.Arbitrary<infer T> ? T : never;

function makeView(b: Backend, c: ViewCase) {
  const shape = [...c.shape];
  if (c.broadcastDim !== undefined) shape[c.broadcastDim] = 1;
  const count = shape.reduce((x, y) => x * y, 1);
  const data = new Float32Array(count).map((_, i) => Math.sin(i * 1.7 + c.seed) * 100);
  const stored = c.dtype === "f16" ? Float32Array.from(new Float16Array(data)) : data;
  const t = b.tensor(data, shape, c.dtype);
  let view: Tensor = t;
  if (c.broadcastDim !== undefined) view = broadcast(view, c.shape);
  view = permute(view, c.axes);
  const size = view.shape[c.sliceDim];
  const from = c.sliceFrom % size, to = from + 1 + (c.sliceTo % (size - from));
  view = slice(view, c.sliceDim, from, to);
  return { t, view, expected: gatherOneByOne(stored, view) };
}

for (const b of backends) {
  Deno.test(`${b.name} read, readInto and readMany equal the one-by-one gather of any view`, async () => {
    await fc.assert(
      fc.asyncProperty(viewCase, viewCase, async (c1, c2) => {
        const one = makeView(b, c1), two = makeView(b, c2);
        assertEquals([...await b.read(one.view)], one.expected, "read");
        const target = new Float32Array(one.expected.length).fill(NaN);
        const same = await b.readInto(one.view, target);
        assert(same === target, "readInto resolves to its target");
        assertEquals([...target], one.expected, "readInto");
        const [a, c] = await b.readMany([one.view, two.view]);
        assertEquals([...a], one.expected, "readMany first");
        assertEquals([...c], two.expected, "readMany second");
        assertEquals([...await b.read(one.t)], gatherOneByOne(await b.read(one.t), one.t));
        b.release(one.t), b.release(two.t);
      }),
      { numRuns: b.name === "cpu" ? 60 : 25, verbose: true },
    );
  });

  Deno.test(`${b.name} reads in flight together each return their own tensor`, async () => {
    const tensors = [1, 2, 3, 4].map((k) =>
      b.tensor(new Float32Array(1000 * k).fill(k), [1, k, 10, 100])
    );
    const reads = await Promise.all(tensors.map((t) => b.read(t)));
    reads.forEach((r, i) => {
      assertEquals(r.length, 1000 * (i + 1));
      assert(r.every((x) => x === i + 1), `read ${i} returned another tensor's data`);
    });
    tensors.forEach((t) => b.release(t));
  });

  Deno.test(`${b.name} uploads typed arrays and plain arrays alike, odd f16 counts included`, async () => {
    for (const dtype of ["f32", "f16"] as const) {
      for (const n of [1, 3, 7, 64]) {
        const values = Array.from({ length: n }, (_, i) => i - 2.5);
        const typed = dtype === "f16" ? Float16Array.from(values) : Float32Array.from(values);
        for (const data of [values, typed, Float64Array.from(values)]) {
          const t = b.tensor(data, [n], dtype);
          assertEquals([...await b.read(t)], values, `${dtype} n=${n} ${data.constructor.name}`);
          b.release(t);
        }
      }
    }
  });

  Deno.test(`${b.name} refuses bad reads by name, before any work`, async () => {
    const t = b.tensor([1, 2, 3, 4], [2, 2]);
    await assertRejects(
      () => b.readInto(t, new Float32Array(3)),
      RangeError,
      "target.length must equal 4 for shape [2,2], current value is 3",
    );
    await assertRejects(
      () => b.readInto(t, new Float64Array(4) as unknown as Float32Array),
      TypeError,
      "target must be a Float32Array, current value is Float64Array",
    );
    b.release(t);
    await assertRejects(
      () => b.read(t),
      TypeError,
      "its storage must be live, current state is released",
    );
    await assertRejects(
      () => b.readMany([b.tensor([1], [1]), t]),
      TypeError,
      "Cannot use tensors[1]: its storage must be live",
    );
    b.release(t); // releasing twice is harmless
  });

  Deno.test(`${b.name} refuses tensors of another instance and every call after dispose`, async () => {
    const other = b.name === "cpu" ? createCpuBackend() : await createWebGpuBackend();
    const mine = b.tensor([1, 2], [2]);
    const theirs = other.tensor([1, 2], [2]);
    const message = `tensor must belong to this "${b.name}" backend instance`;
    await assertRejects(() => b.read(theirs), TypeError, message);
    assertThrows(() => b.release(theirs), TypeError, message);
    assertThrows(() => other.release(mine), TypeError, message);
    assertEquals([...await b.read(mine)], [1, 2], "the refusals changed nothing");
    other.dispose();
    other.dispose(); // a second dispose does nothing
    const disposed = "it must not be disposed, current state is disposed";
    assertThrows(() => other.tensor([1], [1]), TypeError, disposed);
    await assertRejects(() => other.read(theirs), TypeError, disposed);
    const x = tensorDesc([1, 1, 2, 1]);
    assertThrows(() => other.plan(attention(x, x, x)), TypeError, disposed);
    b.release(mine);
  });
}

Deno.test({
  name: "webgpu prepare() compiles a plan's pipelines once, counted in stats()",
  ignore: gpu === undefined,
  fn: async () => {
    const b = gpu!;
    const x = b.tensor(new Float32Array(2 * 40 * 24).fill(0.5), [1, 2, 40, 24]);
    const plan = b.plan(attention(x, x, x, { lse: true }));
    const before = b.stats();
    await b.prepare(plan);
    const after = b.stats();
    assert(after.pipelines > before.pipelines, "prepare compiled the plan's pipelines");
    assert(after.compileMs > before.compileMs, "compile time counted");
    assertEquals(after.liveBytes, before.liveBytes, "prepare allocates nothing");
    await b.prepare(b.plan(attention(x, x, x, { lse: true })));
    assertEquals(b.stats().pipelines, after.pipelines, "an equal plan compiles nothing new");
    const { out, lse } = await b.run(plan, { q: x, k: x, v: x });
    assertEquals(b.stats().pipelines, after.pipelines, "the prepared run compiles nothing");
    const [o, l] = await b.readMany([out, lse!]);
    assert(o.every((v) => Math.abs(v - 0.5) < 1e-6) && l.length === 80);
    for (const t of [x, out, lse!]) b.release(t);
  },
});

Deno.test({
  name: "webgpu prepare() of a plan that cannot compile rejects with the shader's label",
  ignore: gpu === undefined,
  fn: async () => {
    const b = gpu!;
    const x = b.tensor(new Float32Array(16 * 8).fill(1), [1, 1, 16, 8]);
    const plan = b.plan(mask(causal())(attention(x, x, x, { scale: 0.5 })));
    // Every plan from lower() compiles, so the failure is made in the shader compiler: the
    // device is handed broken WGSL for as long as the patch stays.
    const device = b.device;
    const create = device.createShaderModule;
    device.createShaderModule = (d) =>
      create.call(device, {
        ...d,
        code: `${d.code}
fn broken(`,
      });
    const before = b.stats();
    try {
      await assertRejects(() => b.prepare(plan), Error, 'Cannot compile shader "flash: ');
    } finally {
      device.createShaderModule = create;
    }
    const after = b.stats();
    assertEquals({ ...after, compileMs: 0 }, { ...before, compileMs: 0 }, "nothing was kept");
    await b.prepare(plan); // the failure was not cached
    const { out } = await b.run(plan, { q: x, k: x, v: x });
    assert((await b.read(out)).every((v) => v === 1), "the backend stays usable");
    b.release(x), b.release(out);
  },
});

Deno.test("cpu prepare() resolves at once and checks the plan's backend", async () => {
  const x = cpu.tensor(new Float32Array(8), [1, 1, 2, 4]);
  await cpu.prepare(cpu.plan(attention(x, x, x)));
  if (gpu) {
    await assertRejects(
      () => cpu.prepare(gpu!.plan(attention(x, x, x))),
      TypeError,
      'plan.backend must be "cpu", current value is "webgpu"',
    );
  }
});
