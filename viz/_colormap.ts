/**
 * Colours of heatmap cells: colormaps over `[0, 1]` and the fixed colours of non-finite values.
 * @module
 */

/** A colour as `[red, green, blue]` bytes. */
export type Rgb = readonly [number, number, number];

/** Names of the colormaps. */
export type ColormapName = "viridis" | "gray";

/** Matplotlib's viridis at 17 evenly spaced points; colours between are interpolated. */
const VIRIDIS: readonly Rgb[] = [
  0x440154,
  0x48186a,
  0x472d7b,
  0x424086,
  0x3b528b,
  0x33638d,
  0x2c728e,
  0x26828e,
  0x21918c,
  0x1fa088,
  0x28ae80,
  0x3fbc73,
  0x5ec962,
  0x84d44b,
  0xaddc30,
  0xd8e219,
  0xfde725,
].map((c) => [c >> 16, (c >> 8) & 0xff, c & 0xff] as const);

/** `-Infinity` (a masked score) is white, `+Infinity` red and NaN magenta. */
export const NON_FINITE: Readonly<{ negInf: Rgb; posInf: Rgb; nan: Rgb }> = Object.freeze({
  negInf: [255, 255, 255] as const,
  posInf: [255, 0, 0] as const,
  nan: [255, 0, 255] as const,
});

/** The colour of `t` in `[0, 1]` under a colormap. */
export function colorAt(name: ColormapName, t: number): Rgb {
  if (name === "gray") {
    const g = Math.round(255 * t);
    return [g, g, g];
  }
  const position = t * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(position), VIRIDIS.length - 2);
  const f = position - i;
  const [a, b] = [VIRIDIS[i], VIRIDIS[i + 1]];
  return [0, 1, 2].map((c) => Math.round(a[c] + (b[c] - a[c]) * f)) as unknown as Rgb;
}
