/**
 * PyTorch references for the GPU benchmarks, measured in the same run: a Python script that
 * prints its rows as one `ROWS<json>` line.
 * @module
 */

/**
 * Runs a PyTorch script with `python3` and returns the rows it printed after `ROWS`; none (with a
 * warning) where Python, PyTorch or a GPU is missing.
 *
 * @param script Python source whose last line prints `"ROWS" + json.dumps(rows)`.
 * @returns The rows.
 */
export async function torchRows<Row>(script: string): Promise<Row[]> {
  try {
    const result = await new Deno.Command("python3", {
      args: ["-c", script],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const text = new TextDecoder().decode(result.stdout);
    const line = text.split("\n").find((l) => l.startsWith("ROWS"));
    if (line) return JSON.parse(line.slice(4));
    console.warn(`PyTorch reference printed no rows:\n${text}`);
  } catch (e) {
    console.warn(`PyTorch reference not run: ${(e as Error).message}`);
  }
  return [];
}

/** A shape in PyTorch's terms: batch, heads, length, head dim. */
export type TorchShape = readonly [number, number, number, number];

/**
 * The script timing PyTorch's fp32 SDPA (memory-efficient, and math where its N×N scores fit in
 * 8 GB), causal and not, on each shape: 10 runs after a warm-up, CUDA events, TF32 off.
 *
 * @param shapes The shapes.
 * @param math Whether to time the math backend too.
 * @returns Python source for `torchRows`.
 */
export function sdpaScript(shapes: readonly TorchShape[], math = true): string {
  return `
import json, torch
from torch.nn.attention import sdpa_kernel, SDPBackend
torch.backends.cuda.matmul.allow_tf32 = False
rows = []
for b, h, n, d in ${JSON.stringify(shapes)}:
    q = torch.randn(b, h, n, d, device="cuda", dtype=torch.float32)
    for causal in (False, True):
        for name, backend in (("memory-efficient", SDPBackend.EFFICIENT_ATTENTION), ("math", SDPBackend.MATH)):
            if name == "math" and (${math ? "False" : "True"} or b * h * n * n * 4 > 8e9):
                continue
            with sdpa_kernel(backend):
                f = lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=causal)
                f(); torch.cuda.synchronize()
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                iters = 10
                start.record()
                for _ in range(iters): f()
                end.record(); torch.cuda.synchronize()
                ms = start.elapsed_time(end) / iters
            flops = 4 * b * h * n * n * d * (0.5 if causal else 1)
            rows.append(dict(impl="torch sdpa " + name, shape=f"B{b} H{h} N{n} D{d}", causal=causal, dtype="f32", ms=ms, tflops=flops / ms / 1e9))
            print(json.dumps(rows[-1]), flush=True)
print("ROWS" + json.dumps(rows))
`;
}
