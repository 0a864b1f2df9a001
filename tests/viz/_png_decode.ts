/**
 * A PNG decoder for tests, written apart from viz/_png.ts so that encoder bugs cannot cancel
 * out: chunks parsed and CRC-checked (bit by bit, no table), IDAT inflated with
 * `DecompressionStream`, all five scanline filters undone. 8-bit RGB and RGBA, not interlaced.
 * @module
 */

/** One chunk as found in the file. */
export interface PngChunk {
  /** Four-letter type. */
  readonly type: string;
  /** Payload. */
  readonly data: Uint8Array;
  /** Whether the stored CRC matches the type and payload. */
  readonly crcOk: boolean;
}

/** A decoded image: pixels always as RGBA. */
export interface DecodedPng {
  /** Chunks in file order. */
  readonly chunks: readonly PngChunk[];
  /** Pixels per row. */
  readonly width: number;
  /** Rows. */
  readonly height: number;
  /** 2 (RGB) or 6 (RGBA). */
  readonly colorType: number;
  /** Filter type of each scanline. */
  readonly filters: readonly number[];
  /** `width × height × 4` bytes. */
  readonly rgba: Uint8Array;
}

const SIGNATURE = "89504e470d0a1a0a";

function crc(bytes: Uint8Array): number {
  let c = ~0;
  for (const byte of bytes) {
    c ^= byte;
    for (let bit = 0; bit < 8; bit++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Splits a PNG file into chunks; throws on a bad signature or a truncated chunk. */
export function readChunks(png: Uint8Array): PngChunk[] {
  if (hex(png.subarray(0, 8)) !== SIGNATURE) {
    throw new Error(`bad signature ${hex(png.subarray(0, 8))}`);
  }
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const chunks: PngChunk[] = [];
  for (let at = 8; at < png.length;) {
    const length = view.getUint32(at);
    if (at + 12 + length > png.length) throw new Error(`chunk at ${at} runs past the end`);
    const typed = png.subarray(at + 4, at + 8 + length);
    chunks.push({
      type: String.fromCharCode(...typed.subarray(0, 4)),
      data: typed.subarray(4),
      crcOk: crc(typed) === view.getUint32(at + 8 + length),
    });
    at += 12 + length;
  }
  return chunks;
}

async function inflate(data: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Undoes one scanline's filter in place, given the previous (already unfiltered) line. */
export function unfilter(type: number, line: Uint8Array, prior: Uint8Array, bpp: number): void {
  for (let x = 0; x < line.length; x++) {
    const a = x >= bpp ? line[x - bpp] : 0;
    const b = prior[x];
    const c = x >= bpp ? prior[x - bpp] : 0;
    const predictor = [0, a, b, (a + b) >> 1, paeth(a, b, c)][type];
    if (predictor === undefined) throw new Error(`unknown filter type ${type}`);
    line[x] = (line[x] + predictor) & 0xff;
  }
}

/** Decodes an 8-bit, non-interlaced RGB or RGBA PNG. */
export async function decodePng(png: Uint8Array): Promise<DecodedPng> {
  const chunks = readChunks(png);
  const header = chunks[0];
  if (header?.type !== "IHDR") throw new Error("IHDR must come first");
  const view = new DataView(header.data.buffer, header.data.byteOffset, 13);
  const [width, height] = [view.getUint32(0), view.getUint32(4)];
  const [depth, colorType, , , interlace] = header.data.subarray(8, 13);
  if (depth !== 8 || (colorType !== 2 && colorType !== 6) || interlace !== 0) {
    throw new Error(
      `unsupported PNG: depth ${depth}, color type ${colorType}, interlace ${interlace}`,
    );
  }
  const idat = chunks.filter((c) => c.type === "IDAT").map((c) => c.data);
  const joined = new Uint8Array(idat.reduce((n, d) => n + d.length, 0));
  idat.reduce((at, d) => (joined.set(d, at), at + d.length), 0);
  const raw = await inflate(joined);
  const bpp = colorType === 6 ? 4 : 3;
  const stride = width * bpp;
  if (raw.length !== height * (stride + 1)) {
    throw new Error(`inflated ${raw.length} bytes, expected ${height * (stride + 1)}`);
  }
  const rgba = new Uint8Array(width * height * 4).fill(255);
  const filters: number[] = [];
  let prior = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const start = y * (stride + 1);
    filters.push(raw[start]);
    const line = raw.slice(start + 1, start + 1 + stride);
    unfilter(raw[start], line, prior, bpp);
    for (let x = 0; x < width; x++) {
      rgba.set(line.subarray(x * bpp, x * bpp + bpp), (y * width + x) * 4);
    }
    prior = line;
  }
  return { chunks, width, height, colorType, filters, rgba };
}
