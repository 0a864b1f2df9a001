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
