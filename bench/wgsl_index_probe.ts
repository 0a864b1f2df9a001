/**
 * Probe (issue 12): what naga's bounds checks cost a loop of FMAs fed from workgroup memory.
 * Every dynamic index into a workgroup array becomes `min(i, n - 1)` in the SPIR-V that wgpu
 * hands the driver, so `sh[base + c]` cannot fold `c` into the load's immediate offset; a nested
 * array read as `sh[row][c]` with constant `c` is clamped once per row. Each invocation
 * accumulates R rows × K keys (as the flash kernel's S = Q·Kᵀ), with the same loads and FMAs
 * in both layouts (rows padded to 17 `vec4`s, so neither has bank conflicts).
 *
 *     .gpu/run.sh deno run -A bench/wgsl_index_probe.ts [steps] [out.json]
 * @module
 */
const adapter = await navigator.gpu.requestAdapter();
if (!adapter) throw new Error("Cannot run the probe: no WebGPU adapter");
const device = await adapter.requestDevice();
const steps = Number(Deno.args.find((a) => /^\d+$/.test(a)) ?? 256);
const outPath = Deno.args.find((a) => a.endsWith(".json"));
const UNROLL = 16, GROUPS = 132 * 8, SLOTS = 96 * 17;
// GPUBufferUsage.STORAGE, as a number (the global is missing from the type libraries).
const STORAGE = 0x80;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

function probeWgsl(nested: boolean, rows: number, keys: number, threads: number): string {
  const quads = range(rows / 4), groups = range(keys / 4);
  const acc = quads.flatMap((q) => range(4).flatMap((r) => groups.map((g) => `s${q}_${r}_${g}`)));
  // Row `off` (plus a per-step constant): nested [row][step], or flat with the same offsets.
  const read = (off: string, w: number) =>
    nested ? `sh[row + ${off}][${w}]` : `sh[base + ${w * 17}u + ${off}]`;
  const body = range(UNROLL).map((w) =>
    [
      ...quads.map((q) => `let a${q} = ${read(`ty + ${q * 8}u`, w)};`),
      ...groups.map((g) => `let k${g} = ${read(`16u + tx + ${g * 16}u`, w)};`),
      ...quads.flatMap((q) =>
        range(4).flatMap((r) => groups.map((g) => `s${q}_${r}_${g} += a${q}.${"xyzw"[r]} * k${g};`))
      ),
    ].join(" ")
  ).map((step) => `{ ${step} }`).join("\n    ");
  return `
@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;
var<workgroup> sh: ${
    nested ? `array<array<vec4<f32>, 17>, ${SLOTS / 17}>` : `array<vec4<f32>, ${SLOTS}>`
  };
@compute @workgroup_size(${threads})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let tx = lid % 16u;
  let ty = lid / 16u % 16u;
  for (var i = lid; i < ${SLOTS}u; i += ${threads}u) {
    ${nested ? "sh[i / 17u][i % 17u]" : "sh[i]"} = vec4<f32>(f32(i));
  }
  workgroupBarrier();
  ${acc.map((a) => `var ${a} = vec4<f32>(0.0);`).join(" ")}
  for (var i = 0u; i < ${steps}u; i++) {
    let base = (i % 2u) * 17u * 48u;
    let row = (i % 2u) * 48u;
    ${body}
  }
  out[wg.x * ${threads}u + lid] = ${acc.join(" + ")};
}`;
}

const results: Record<string, unknown>[] = [];
for (
  const [rows, keys, threads] of [[4, 4, 256], [8, 4, 256], [4, 8, 256], [8, 8, 128], [8, 8, 256]]
) {
  for (const nested of [false, true]) {
    const buf = device.createBuffer({ size: GROUPS * threads * 16, usage: STORAGE });
    const module = device.createShaderModule({ code: probeWgsl(nested, rows, keys, threads) });
    const pipeline = device.createComputePipeline({
      layout: "auto",
      compute: { module, entryPoint: "main" },
    });
    const bind = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: buf } }],
    });
    const run = async (n: number) => {
      const enc = device.createCommandEncoder();
      for (let j = 0; j < n; j++) {
        const pass = enc.beginComputePass();
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bind);
        pass.dispatchWorkgroups(GROUPS);
        pass.end();
      }
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
    };
    device.pushErrorScope("validation");
    await run(2);
    const error = await device.popErrorScope();
    if (error) throw new Error(`Cannot run the probe: ${error.message}`);
    const t0 = performance.now();
    await run(10);
    const ms = (performance.now() - t0) / 10;
    const flops = 2 * rows * keys * UNROLL * steps * threads * GROUPS;
    const row = {
      layout: nested ? "nested" : "flat",
      rows,
      keys,
      threads,
      ms,
      tflops: flops / ms / 1e9,
    };
    console.log(JSON.stringify(row));
    results.push(row);
    buf.destroy();
  }
}
if (outPath) await Deno.writeTextFile(outPath, JSON.stringify(results, null, 1) + "\n");
