/**
 * Executes examples/notebooks/tour.ipynb on the real Deno Jupyter kernel through
 * `jupyter nbconvert --execute` (output to stdout: the committed notebook is never touched),
 * and fails on any error output or when no cell shows an image. Where Jupyter or the Deno
 * kernelspec is missing the test is skipped with a line saying so, unless
 * ATTEND_REQUIRE_JUPYTER=1 (CI), which turns the absence into a failure.
 * @module
 */
import { assert, assertEquals, fail } from "@std/assert";
import { decodePng } from "../viz/_png_decode.ts";

const NOTEBOOK = new URL("../../examples/notebooks/tour.ipynb", import.meta.url);
const required = Deno.env.get("ATTEND_REQUIRE_JUPYTER") === "1";

interface Output {
  readonly output_type: string;
  readonly name?: string;
  readonly text?: string | string[];
  readonly ename?: string;
  readonly evalue?: string;
  readonly data?: Record<string, string | string[]>;
}
interface Cell {
  readonly cell_type: string;
  readonly execution_count?: number | null;
  readonly outputs?: Output[];
}
interface Notebook {
  readonly cells: Cell[];
  readonly metadata: { readonly kernelspec?: { readonly name: string; readonly language: string } };
}

async function jupyter(...args: string[]): Promise<Deno.CommandOutput | undefined> {
  try {
    return await new Deno.Command("jupyter", { args, stdin: "null" }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** Why the notebook cannot run here, or undefined when it can. */
async function missingJupyter(): Promise<string | undefined> {
  if (!(await jupyter("nbconvert", "--version"))?.success) return "jupyter nbconvert not found";
  const specs = await jupyter("kernelspec", "list", "--json");
  const names = specs?.success
    ? Object.keys(JSON.parse(new TextDecoder().decode(specs.stdout)).kernelspecs)
    : [];
  return names.includes("deno") ? undefined : "the deno kernelspec is not installed";
}

const missing = await missingJupyter();
if (missing && !required) {
  console.warn(
    `notebook test skipped: ${missing} (install Debian's jupyter-nbconvert and jupyter-client, then run \`deno jupyter --install\`; ATTEND_REQUIRE_JUPYTER=1 makes this a failure)`,
  );
}

const text = (value: string | string[] | undefined) =>
  Array.isArray(value) ? value.join("") : value ?? "";

Deno.test({
  name: "tour.ipynb executes on the Deno kernel without errors and shows images",
  ignore: missing !== undefined && !required,
  fn: async () => {
    if (missing) fail(`ATTEND_REQUIRE_JUPYTER=1 but ${missing}`);
    const run = await jupyter(
      "nbconvert",
      "--to=notebook",
      "--execute",
      "--stdout",
      "--ExecutePreprocessor.timeout=600",
      decodeURIComponent(NOTEBOOK.pathname),
    );
    // Without --allow-errors a cell whose execution fails stops nbconvert, even when the kernel
    // sent no error output for it (as for a failed top-level import).
    assert(
      run?.success,
      `nbconvert failed:\n${new TextDecoder().decode(run?.stderr).slice(-3000)}`,
    );
    const executed: Notebook = JSON.parse(new TextDecoder().decode(run.stdout));
    const outputs = executed.cells.flatMap((cell, i) =>
      (cell.outputs ?? []).map((output) => ({ cell: i, output }))
    );
    const problems = outputs.flatMap(({ cell, output }) => {
      if (output.output_type === "error") {
        return [`cell ${cell}: ${output.ename}: ${output.evalue}`];
      }
      const stderr = output.name === "stderr" ? text(output.text) : "";
      return /error|uncaught/i.test(stderr) ? [`cell ${cell} stderr: ${stderr}`] : [];
    });
    assertEquals(problems, [], "the notebook's cells report errors");
    const pngs = outputs.map(({ output }) => text(output.data?.["image/png"])).filter(Boolean);
    const svgs = outputs.map(({ output }) => text(output.data?.["image/svg+xml"])).filter(Boolean);
    assert(pngs.length + svgs.length > 0, "no cell produced an image/png or image/svg+xml output");
    for (const png of pngs) {
      const decoded = await decodePng(Uint8Array.from(atob(png), (c) => c.charCodeAt(0)));
      assert(decoded.width > 0 && decoded.chunks.every((c) => c.crcOk), "a PNG output is broken");
    }
    for (const svg of svgs) assert(svg.trimStart().startsWith("<svg"), "an SVG output is broken");
  },
});

Deno.test("tour.ipynb is committed for the Deno kernel and without outputs", async () => {
  const notebook: Notebook = JSON.parse(await Deno.readTextFile(NOTEBOOK));
  assertEquals(notebook.metadata.kernelspec?.name, "deno");
  assertEquals(notebook.metadata.kernelspec?.language, "typescript");
  const code = notebook.cells.filter((cell) => cell.cell_type === "code");
  assert(code.length > 0);
  for (const cell of code) {
    assertEquals(cell.outputs, [], "a code cell has stale outputs");
    assertEquals(cell.execution_count, null, "a code cell has an execution count");
  }
});
