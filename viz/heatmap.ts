/**
 * `heatmap()`: a matrix as a PNG image, one colour per cell, no axes.
 * @module
 */
import { canvasAvailable, encodeCanvasPng } from "./_canvas.ts";
import { colorAt, type ColormapName, NON_FINITE, type Rgb } from "./_colormap.ts";
import { encodePng } from "./_png.ts";

export type { ColormapName } from "./_colormap.ts";

/** A row-major matrix: `data[row * cols + col]`. */
export interface Matrix {
  /** Number of rows. */
  readonly rows: number;
  /** Number of columns. */
  readonly cols: number;
  /** `rows × cols` values, row-major. */
  readonly data: ArrayLike<number>;
}

/** How `heatmap()` encodes the PNG. */
export type HeatmapRenderer = "png" | "canvas";

/** Options of `heatmap()`. */
export interface HeatmapOptions {
  /** Value drawn with the colormap's first colour; the smallest finite value by default. */
  readonly min?: number;
  /** Value drawn with the colormap's last colour; the largest finite value by default. */
  readonly max?: number;
  /** Pixels per cell side (nearest-neighbour upscaling); 1 by default. */
  readonly scale?: number;
  /** `"viridis"` (default) or `"gray"` (black to white). */
  readonly colormap?: ColormapName;
  /**
   * `"png"` (default) encodes in TypeScript with the platform's deflate; `"canvas"` hands the
   * pixels to `OffscreenCanvas.convertToBlob` where the runtime has one (Deno 2.9's encoder
   * writes files 2–5× larger, so it is not the default).
   */
  readonly renderer?: HeatmapRenderer;
}

/** Largest image side, the common canvas limit. */
const MAX_SIDE = 16384;
const COLORMAPS: readonly ColormapName[] = ["viridis", "gray"];
const RENDERERS: readonly HeatmapRenderer[] = ["png", "canvas"];

function fail(what: string, value: unknown, Kind: typeof RangeError = RangeError): never {
  throw new Kind(`Cannot render heatmap: ${what}, current value is ${value}`);
}

function positiveInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) fail(`${name} must be a positive integer`, value);
}

function toMatrix(input: Matrix | readonly (readonly number[])[]): Matrix {
  if (Array.isArray(input)) {
    const rows = input as readonly (readonly number[])[];
    const notRow = rows.findIndex((row) => !Array.isArray(row));
    if (notRow >= 0) fail("rows must be arrays", `${rows[notRow]} at row ${notRow}`, TypeError);
    const cols = rows[0]?.length ?? 0;
    const ragged = rows.findIndex((row) => row.length !== cols);
    if (ragged >= 0) {
      fail(
        `every row must have ${cols} values like row 0`,
        `${rows[ragged].length} in row ${ragged}`,
      );
    }
    return { rows: rows.length, cols, data: rows.flat() };
  }
  const m = input as Matrix;
  if (typeof m !== "object" || m === null || typeof m.data?.length !== "number") {
    fail("matrix must be { rows, cols, data } or an array of rows", m, TypeError);
  }
  return m;
}

function checkMatrix({ rows, cols, data }: Matrix): void {
  positiveInteger("rows", rows);
  positiveInteger("cols", cols);
  if (data.length !== rows * cols) {
    fail(`data.length must equal rows × cols (${rows * cols})`, data.length);
  }
  for (let i = 0; i < data.length; i++) {
    if (typeof data[i] !== "number") {
      fail("values must be numbers", `${data[i]} at index ${i}`, TypeError);
    }
  }
}

function checkOptions(options: HeatmapOptions): void {
  for (const bound of ["min", "max"] as const) {
    const value = options[bound];
    if (value !== undefined && !Number.isFinite(value)) fail(`${bound} must be finite`, value);
  }
  if (options.min !== undefined && options.max !== undefined && options.min >= options.max) {
    fail(`min must be less than max (${options.max})`, options.min);
  }
  if (options.scale !== undefined) positiveInteger("scale", options.scale);
  if (options.colormap !== undefined && !COLORMAPS.includes(options.colormap)) {
    fail(`colormap must be one of ${COLORMAPS.join(", ")}`, options.colormap, TypeError);
  }
  if (options.renderer !== undefined && !RENDERERS.includes(options.renderer)) {
    fail(`renderer must be one of ${RENDERERS.join(", ")}`, options.renderer, TypeError);
  }
}

/** Colour of every cell, bytes `[r, g, b]` per cell. */
function cellColors({ data }: Matrix, options: HeatmapOptions): Uint8Array {
  let [lo, hi] = [Infinity, -Infinity];
  for (let i = 0; i < data.length; i++) {
    if (Number.isFinite(data[i])) lo = Math.min(lo, data[i]), hi = Math.max(hi, data[i]);
  }
  lo = options.min ?? lo;
  hi = options.max ?? hi;
  const colormap = options.colormap ?? "viridis";
  const colors = new Uint8Array(data.length * 3);
  for (let i = 0; i < data.length; i++) {
    const x = data[i];
    let rgb: Rgb;
    if (Number.isNaN(x)) rgb = NON_FINITE.nan;
    else if (x === -Infinity) rgb = NON_FINITE.negInf;
    else if (x === Infinity) rgb = NON_FINITE.posInf;
    else rgb = colorAt(colormap, hi > lo ? Math.min(Math.max((x - lo) / (hi - lo), 0), 1) : 0.5);
    colors.set(rgb, i * 3);
  }
  return colors;
}

/** Opaque RGBA pixels, each cell a `scale × scale` square. */
function pixels(colors: Uint8Array, { rows, cols }: Matrix, scale: number) {
  const [width, height] = [cols * scale, rows * scale];
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    const row = Math.floor(y / scale) * cols;
    for (let x = 0; x < width; x++) {
      const [cell, px] = [(row + Math.floor(x / scale)) * 3, (y * width + x) * 4];
      rgba[px] = colors[cell];
      rgba[px + 1] = colors[cell + 1];
      rgba[px + 2] = colors[cell + 2];
      rgba[px + 3] = 255;
    }
  }
  return { rgba, width, height };
}

/**
 * Renders a matrix as a PNG image: cell `(row, col)` is the square of `scale × scale` pixels at
 * `(col · scale, row · scale)`, coloured by the colormap at `(value - min) / (max - min)`
 * (clamped to `[0, 1]`; a range of zero width gives the middle colour). `-Infinity` (a masked
 * score) draws white, `+Infinity` red and NaN magenta.
 *
 * ```
 * [[0, 1],      viridis: dark purple, yellow
 *  [1, -Inf]]            yellow, white
 * ```
 *
 * @param matrix `{ rows, cols, data }` with row-major data, or an array of equal-length rows.
 * @param options Value range, pixels per cell, colormap and encoder.
 * @returns The PNG file's bytes.
 * @throws {TypeError} If the matrix is not one of the two shapes or holds a non-number, or if
 *   `colormap` or `renderer` is unknown, or `renderer` is `"canvas"` in a runtime without
 *   `OffscreenCanvas`.
 * @throws {RangeError} If `rows`, `cols` or `scale` is not a positive integer, `data.length`
 *   is not `rows × cols`, rows differ in length, `min` or `max` is not finite or
 *   `min >= max`, or a side of the image exceeds 16384 pixels.
 * @example
 * ```ts
 * import { heatmap } from "@attend/attend/viz";
 * const png = await heatmap([[0, 1], [1, -Infinity]], { scale: 8 });
 * const view = new DataView(png.buffer, png.byteOffset);
 * if (view.getUint32(0) !== 0x89504e47) throw new Error("PNG signature");
 * if (view.getUint32(16) !== 16 || view.getUint32(20) !== 16) throw new Error("16 × 16 pixels");
 * ```
 */
export async function heatmap(
  matrix: Matrix | readonly (readonly number[])[],
  options: HeatmapOptions = {},
): Promise<Uint8Array> {
  const m = toMatrix(matrix);
  checkMatrix(m);
  checkOptions(options);
  const scale = options.scale ?? 1;
  if (Math.max(m.rows, m.cols) * scale > MAX_SIDE) {
    fail(`image sides must be at most ${MAX_SIDE} pixels`, `${m.cols * scale} × ${m.rows * scale}`);
  }
  const canvas = options.renderer === "canvas";
  if (canvas && !canvasAvailable()) {
    throw new TypeError(
      'Cannot render heatmap: renderer "canvas" needs an OffscreenCanvas with a "bitmaprenderer" context, and this runtime has none',
    );
  }
  const { rgba, width, height } = pixels(cellColors(m, options), m, scale);
  return canvas ? await encodeCanvasPng(rgba, width, height) : await encodePng(rgba, width, height);
}
