import { assert, assertEquals, assertRejects } from "@std/assert";
import { heatmap, type HeatmapOptions, type Matrix } from "../../viz/mod.ts";
import { decodePng, readChunks } from "./_png_decode.ts";

type Rgb = [number, number, number];
const hex = (c: number): Rgb => [c >> 16, (c >> 8) & 0xff, c & 0xff];
const [WHITE, RED, MAGENTA]: Rgb[] = [[255, 255, 255], [255, 0, 0], [255, 0, 255]];

/** The picture a heatmap must decode to: each cell's colour on a `scale × scale` square. */
function expected(colors: Rgb[], cols: number, scale: number): Uint8Array {
  const rows = colors.length / cols;
  const out = new Uint8Array(rows * cols * scale * scale * 4);
  for (let y = 0; y < rows * scale; y++) {
    for (let x = 0; x < cols * scale; x++) {
      const cell = colors[Math.floor(y / scale) * cols + Math.floor(x / scale)];
      out.set([...cell, 255], (y * cols * scale + x) * 4);
    }
  }
  return out;
}

async function decodes(matrix: Matrix, options: HeatmapOptions, colors: Rgb[]) {
  const png = await heatmap(matrix, options);
  const decoded = await decodePng(png);
  const scale = options.scale ?? 1;
  assertEquals([decoded.width, decoded.height], [matrix.cols * scale, matrix.rows * scale]);
  assertEquals(decoded.rgba, expected(colors, matrix.cols, scale));
  return decoded;
}

Deno.test("heatmap() writes a PNG signature, an IHDR of cols·scale × rows·scale, and valid CRCs", async () => {
  const png = await heatmap({ rows: 3, cols: 5, data: new Float32Array(15) }, {
    scale: 4,
    renderer: "png",
  });
  assertEquals(Array.from(png.subarray(0, 8)), [137, 80, 78, 71, 13, 10, 26, 10]);
  const chunks = readChunks(png);
  assertEquals(chunks.map((c) => c.type), ["IHDR", "IDAT", "IEND"]);
  assert(chunks.every((c) => c.crcOk), "every chunk's CRC checks");
  const ihdr = new DataView(chunks[0].data.buffer, chunks[0].data.byteOffset);
  assertEquals([ihdr.getUint32(0), ihdr.getUint32(4)], [20, 12]);
  assertEquals(Array.from(chunks[0].data.subarray(8)), [8, 6, 0, 0, 0]);
});

Deno.test("heatmap() colours viridis stops exactly and non-finite values by their fixed colours", async () => {
  const data = [0, 1 / 32, 1 / 16, 0.5, 1, -Infinity, Infinity, NaN];
  const colors = [
    hex(0x440154),
    [70, 13, 95] as Rgb, // halfway between the first two stops, rounded
    hex(0x48186a),
    hex(0x21918c),
    hex(0xfde725),
    WHITE,
    RED,
    MAGENTA,
  ];
  const decoded = await decodes({ rows: 2, cols: 4, data }, { renderer: "png" }, colors);
  assertEquals(new Set(decoded.filters), new Set([0]));
});

Deno.test("heatmap() upscales each cell to a scale × scale square", async () => {
  const colors = [hex(0x440154), hex(0xfde725), hex(0xfde725), WHITE];
  await decodes(
    { rows: 2, cols: 2, data: [0, 1, 1, -Infinity] },
    { scale: 3, renderer: "png" },
    colors,
  );
});

Deno.test("heatmap() maps values linearly onto gray, clamping to min and max", async () => {
  const data = Array.from({ length: 260 }, (_, i) => i - 2);
  const colors = data.map((v): Rgb => {
    const g = Math.min(Math.max(v, 0), 255);
    return [g, g, g];
  });
  await decodes({ rows: 20, cols: 13, data }, {
    min: 0,
    max: 255,
    colormap: "gray",
    renderer: "png",
  }, colors);
});

Deno.test("heatmap() takes the range from the finite values, and gives constant data the middle colour", async () => {
  await decodes({ rows: 1, cols: 3, data: [-4, Infinity, 6] }, { colormap: "gray" }, [
    [0, 0, 0],
    RED,
    [255, 255, 255],
  ]);
  const middle: Rgb = [128, 128, 128];
  await decodes({ rows: 1, cols: 2, data: [7, 7] }, { colormap: "gray" }, [middle, middle]);
});

Deno.test("heatmap() reads an array of rows like the row-major matrix", async () => {
  const rows = [[0, 0.5], [1, NaN], [0.25, 0.75]];
  const flat = { rows: 3, cols: 2, data: rows.flat() };
  assertEquals(await heatmap(rows, { renderer: "png" }), await heatmap(flat, { renderer: "png" }));
});

const canvas = typeof globalThis.OffscreenCanvas === "function";

Deno.test({
  name: "heatmap() through OffscreenCanvas decodes to the same pixels as the TypeScript encoder",
  ignore: !canvas,
  fn: async () => {
    const data = Float64Array.from({ length: 7 * 9 }, (_, i) => Math.sin(i) * 3);
    data[5] = -Infinity;
    const matrix = { rows: 7, cols: 9, data };
    const png = await decodePng(await heatmap(matrix, { scale: 5, renderer: "png" }));
    const viaCanvas = await decodePng(await heatmap(matrix, { scale: 5, renderer: "canvas" }));
    assert(viaCanvas.chunks.every((c) => c.crcOk));
    assertEquals([viaCanvas.width, viaCanvas.height], [45, 35]);
    assertEquals(viaCanvas.rgba, png.rgba);
  },
});

Deno.test("heatmap() with renderer canvas fails clearly where OffscreenCanvas is missing", async () => {
  const saved = Object.getOwnPropertyDescriptor(globalThis, "OffscreenCanvas");
  delete (globalThis as { OffscreenCanvas?: unknown }).OffscreenCanvas;
  try {
    await assertRejects(
      () => heatmap([[1, 2]], { renderer: "canvas" }),
      TypeError,
      'renderer "canvas" needs an OffscreenCanvas with a "bitmaprenderer" context, and this runtime has none',
    );
  } finally {
    if (saved) Object.defineProperty(globalThis, "OffscreenCanvas", saved);
  }
});

Deno.test("heatmap() rejects bad matrices and options with the field and value", async () => {
  const ok = { rows: 2, cols: 2, data: [0, 1, 2, 3] };
  const cases: [unknown, HeatmapOptions, ErrorConstructor, string][] = [
    [
      "abc",
      {},
      TypeError,
      "matrix must be { rows, cols, data } or an array of rows, current value is abc",
    ],
    [[[1], 2], {}, TypeError, "rows must be arrays, current value is 2 at row 1"],
    [
      [[1, 2], [3]],
      {},
      RangeError,
      "every row must have 2 values like row 0, current value is 1 in row 1",
    ],
    [[], {}, RangeError, "rows must be a positive integer, current value is 0"],
    [
      { rows: 2, cols: 1.5, data: [1, 2, 3] },
      {},
      RangeError,
      "cols must be a positive integer, current value is 1.5",
    ],
    [
      { rows: 2, cols: 2, data: [1, 2, 3] },
      {},
      RangeError,
      "data.length must equal rows × cols (4), current value is 3",
    ],
    [
      { rows: 1, cols: 2, data: [1, "x"] },
      {},
      TypeError,
      "values must be numbers, current value is x at index 1",
    ],
    [ok, { min: NaN }, RangeError, "min must be finite, current value is NaN"],
    [ok, { max: Infinity }, RangeError, "max must be finite, current value is Infinity"],
    [ok, { min: 2, max: 2 }, RangeError, "min must be less than max (2), current value is 2"],
    [ok, { scale: 0 }, RangeError, "scale must be a positive integer, current value is 0"],
    [
      ok,
      { scale: 8193 },
      RangeError,
      "image sides must be at most 16384 pixels, current value is 16386 × 16386",
    ],
    [
      ok,
      { colormap: "jet" as "gray" },
      TypeError,
      "colormap must be one of viridis, gray, current value is jet",
    ],
    [
      ok,
      { renderer: "svg" as "png" },
      TypeError,
      "renderer must be one of png, canvas, current value is svg",
    ],
  ];
  for (const [matrix, options, Kind, message] of cases) {
    await assertRejects(
      () => heatmap(matrix as Matrix, options),
      Kind,
      `Cannot render heatmap: ${message}`,
    );
  }
});
