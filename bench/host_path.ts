/**
 * The host path report: what a user waits for around the kernel. In one run it measures
 * `read()`, `readInto()` and `tensor()` of 64 MiB (f32 and f16 storage) beside Deno's WebGPU
 * with no library (copy to a staging buffer, map, one copy out; `writeBuffer` and a wait), and
 * PyTorch's device-to-host and host-to-device copies; `attend()` + `read()` at B1 H32 N4096 D128
 * beside the kernel alone; and first-use compile time per flash pipeline through `prepare()`.
 *
 *     deno run -A bench/host_path.ts [--quick] [--compile-only] [out.json]
 *
 * On the GPU machine: `.gpu/run.sh deno run -A bench/host_path.ts out.json`. Times are medians;
 * GB/s count the bytes stored on the device. Compile times come first, in a fresh process; with
 * `__GL_SHADER_DISK_CACHE=0` the NVIDIA driver's shader cache is off and they are cold.
 * @module
 */
import { attend } from "../attend.ts";
import { attention, causal, compose, kernel, mask, type Transform } from "../core/mod.ts";
import { createWebGpuBackend, type WebGpuBackend } from "../backends/webgpu/mod.ts";
import { attentionFlops, type BenchShape, shapeLabel, timeAttention } from "./_gpu_timing.ts";
import { torchRows } from "./_torch.ts";

interface Row {
  what: string;
  dtype?: string;
  bytes?: number;
  ms: number;
  gbps?: number;
  note?: string;
}

const quick = Deno.args.includes("--quick");
const outPath = Deno.args.find((a) => a.endsWith(".json")) ?? "bench/results/host_path.json";
const BYTES = quick ? 4 * 2 ** 20 : 64 * 2 ** 20;
const REPS = quick ? 5 : 10;
const rows: Row[] = [];
const report = (row: Row) => {
  rows.push(row);
  console.log(JSON.stringify(row));
};

async function median(reps: number, once: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const start = performance.now();
    await once();
    times.push(performance.now() - start);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

const gbps = (bytes: number, ms: number) => bytes / ms / 1e6;

/**
 * Deno's WebGPU alone: copy to a staging buffer, map, one copy into a Float32Array (f16 widened
 * by that copy).
 */
async function rawRead(
  device: GPUDevice,
  source: GPUBuffer,
  bytes: number,
  dtype: "f32" | "f16",
): Promise<Float32Array> {
  const staging = device.createBuffer({ size: bytes, usage: 0x01 | 0x08 });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(source, 0, staging, 0, bytes);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(0x01);
  const range = staging.getMappedRange();
  const out = new Float32Array(bytes / (dtype === "f16" ? 2 : 4));
  out.set(dtype === "f16" ? new Float16Array(range) : new Float32Array(range));
  staging.unmap();
  staging.destroy();
  return out;
}

async function transfers(gpu: WebGpuBackend) {
  for (const dtype of ["f32", "f16"] as const) {
    const elements = BYTES / (dtype === "f16" ? 2 : 4);
    const host = dtype === "f16"
      ? new Float16Array(elements).map((_, i) => i % 1000)
      : new Float32Array(elements).map((_, i) => i % 1000);
    let t = gpu.tensor(host, [elements], dtype);
    const target = new Float32Array(elements);
    const first = performance.now();
    await gpu.read(t);
    report({ what: "read() first call", dtype, bytes: BYTES, ms: performance.now() - first });
    const readMs = await median(REPS, () => gpu.read(t));
    report({ what: "read()", dtype, bytes: BYTES, ms: readMs, gbps: gbps(BYTES, readMs) });
    const intoMs = await median(REPS, () => gpu.readInto(t, target));
    report({ what: "readInto()", dtype, bytes: BYTES, ms: intoMs, gbps: gbps(BYTES, intoMs) });
    const uploadMs = await median(REPS, async () => {
      gpu.release(t);
      t = gpu.tensor(host, [elements], dtype);
      await gpu.sync();
    });
    report({
      what: "tensor() + sync",
      dtype,
      bytes: BYTES,
      ms: uploadMs,
      gbps: gbps(BYTES, uploadMs),
    });
    gpu.release(t);
  }
  const { device } = gpu;
  const source = device.createBuffer({ size: BYTES, usage: 0x80 | 0x04 | 0x08 });
  const host = new Float32Array(BYTES / 4).map((_, i) => i % 1000);
  device.queue.writeBuffer(source, 0, host);
  for (const dtype of ["f32", "f16"] as const) {
    await rawRead(device, source, BYTES, dtype);
    const rawMs = await median(REPS, () => rawRead(device, source, BYTES, dtype));
    report({ what: "raw WebGPU read", dtype, bytes: BYTES, ms: rawMs, gbps: gbps(BYTES, rawMs) });
  }
  const rawUpMs = await median(REPS, async () => {
    device.queue.writeBuffer(source, 0, host);
    await device.queue.onSubmittedWorkDone();
  });
  report({
    what: "raw WebGPU writeBuffer + wait",
    dtype: "f32",
    bytes: BYTES,
    ms: rawUpMs,
    gbps: gbps(BYTES, rawUpMs),
  });
  source.destroy();
}

async function endToEnd(gpu: WebGpuBackend, s: BenchShape) {
  const data = new Float32Array(s.batch * s.heads * s.n * s.dim).map((_, i) =>
    Math.sin(i * 0.37) * 0.5
  );
  const x = gpu.tensor(data, [s.batch, s.heads, s.n, s.dim]);
  const kernelMs = await timeAttention(gpu, s, { dtype: "f32", causal: false, family: "flash" });
  report({
    what: `kernel alone ${shapeLabel(s)}`,
    ms: kernelMs,
    note: `${(attentionFlops(s, false) / kernelMs / 1e9).toFixed(1)} TFLOP/s`,
  });
  const outBytes = 4 * s.batch * s.heads * s.n * s.dim;
  const once = async () => {
    const { out } = await attend(gpu, x, x, x);
    await gpu.read(out);
    gpu.release(out);
  };
  await once();
  const e2e = await median(REPS, once);
  report({ what: `attend() + read() ${shapeLabel(s)}`, bytes: outBytes, ms: e2e });
  gpu.release(x);
}

/** First-use compile time of each flash pipeline, through `prepare()` on a fresh backend. */
async function compileTimes() {
  const gpu = await createWebGpuBackend();
  const cases: { label: string; dim: number; dtype: "f32" | "f16"; t: Transform[] }[] = [
    { label: "flash f32 D128", dim: 128, dtype: "f32", t: [] },
    { label: "flash f32 D128 causal", dim: 128, dtype: "f32", t: [mask(causal())] },
    { label: "flash f16 D128", dim: 128, dtype: "f16", t: [] },
    { label: "flash f32 D64", dim: 64, dtype: "f32", t: [] },
  ];
  for (const c of cases) {
    const x = gpu.tensor(new Float32Array(64 * c.dim), [1, 1, 64, c.dim], c.dtype);
    const plan = gpu.plan(compose(kernel("flash"), ...c.t)(attention(x, x, x)));
    const start = performance.now();
    await gpu.prepare(plan);
    report({ what: `compile ${c.label}`, ms: performance.now() - start });
    gpu.release(x);
  }
  const { pipelines, compileMs } = gpu.stats();
  report({ what: "compile total (stats)", ms: compileMs, note: `${pipelines} pipelines` });
  gpu.dispose();
}

const torchScript = `
import json, time, torch
rows = []
n = ${BYTES} // 4
x = torch.randn(n, device="cuda")
def med(f, reps=${REPS}):
    ts = []
    for _ in range(reps):
        torch.cuda.synchronize(); t = time.perf_counter(); f(); torch.cuda.synchronize()
        ts.append((time.perf_counter() - t) * 1e3)
    return sorted(ts)[len(ts) // 2]
pinned = torch.empty(n, pin_memory=True)
pageable = torch.empty(n)
for name, f in (
    ("torch device-to-host pageable", lambda: x.cpu()),
    ("torch device-to-host pinned", lambda: pinned.copy_(x)),
    ("torch host-to-device pageable", lambda: pageable.cuda()),
    ("torch host-to-device pinned", lambda: x.copy_(pinned)),
):
    f(); ms = med(f)
    rows.append(dict(what=name, dtype="f32", bytes=${BYTES}, ms=ms, gbps=${BYTES} / ms / 1e6))
print("ROWS" + json.dumps(rows))
`;

await compileTimes();
if (Deno.args.includes("--compile-only")) Deno.exit(0);
const gpu = await createWebGpuBackend();
await transfers(gpu);
await endToEnd(gpu, { batch: 1, heads: quick ? 4 : 32, n: quick ? 512 : 4096, dim: 128 });
gpu.dispose();
if (!quick) { for (const row of await torchRows<Row>(torchScript)) report(row); }

const result = { device: gpu.adapterName, date: new Date().toISOString(), rows };
await Deno.mkdir(outPath.replace(/\/[^/]*$/, ""), { recursive: true }).catch(() => {});
await Deno.writeTextFile(outPath, JSON.stringify(result, null, 2));
console.table(rows.map((r) => ({ ...r, ms: r.ms.toFixed(2), gbps: r.gbps?.toFixed(2) })));
