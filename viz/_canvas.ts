/**
 * PNG through `OffscreenCanvas`, where the runtime has one: the pixels become an `ImageBitmap`
 * shown by a `bitmaprenderer` context (Deno's `OffscreenCanvas` has no 2D context; browsers
 * have both), and `convertToBlob` encodes them natively.
 * @module
 */

/** Whether this runtime can encode through `OffscreenCanvas`. */
export function canvasAvailable(): boolean {
  return typeof globalThis.OffscreenCanvas === "function" &&
    typeof globalThis.createImageBitmap === "function" &&
    new OffscreenCanvas(1, 1).getContext("bitmaprenderer") !== null;
}

/**
 * Encodes RGBA pixels as a PNG file with `OffscreenCanvas.convertToBlob`. Opaque pixels only:
 * alpha premultiplication would change colours of translucent ones.
 *
 * @param rgba `width × height × 4` bytes, row-major, alpha 255.
 * @param width Pixels per row.
 * @param height Rows.
 * @returns The PNG file's bytes.
 */
export async function encodeCanvasPng(
  rgba: Uint8ClampedArray<ArrayBuffer>,
  width: number,
  height: number,
): Promise<Uint8Array> {
  const bitmap = await createImageBitmap(new ImageData(rgba, width, height));
  const canvas = new OffscreenCanvas(width, height);
  canvas.getContext("bitmaprenderer")!.transferFromImageBitmap(bitmap);
  const blob = await canvas.convertToBlob({ type: "image/png" });
  return new Uint8Array(await blob.arrayBuffer());
}
