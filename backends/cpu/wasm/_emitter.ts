/**
 * A small typed WebAssembly emitter: enough of the binary format to write SIMD micro-kernels
 * from TypeScript at run time (no toolchain, no committed binaries, nothing a runtime without
 * a filesystem cannot load). Each instruction is a named method, so kernels read like the text
 * format and a typo is a type error, not a wrong opcode.
 * @module
 */

/** Value types the kernels use. */
export type ValType = "i32" | "f32" | "v128";

const TYPE_CODE: Record<ValType, number> = { i32: 0x7f, f32: 0x7d, v128: 0x7b };

/** Unsigned LEB128. */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 of a 32-bit integer. */
function sleb(n: number): number[] {
  const out: number[] = [];
  n |= 0;
  while (true) {
    const byte = n & 0x7f;
    n >>= 7;
    const done = (n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function name(s: string): number[] {
  const bytes = [...new TextEncoder().encode(s)];
  return [...uleb(bytes.length), ...bytes];
}

/** Scalar opcodes (one byte). */
const SCALAR = {
  "i32.lt_u": 0x49,
  "i32.ge_u": 0x4f,
  "i32.add": 0x6a,
  "i32.sub": 0x6b,
  "i32.mul": 0x6c,
  "i32.and": 0x71,
  "i32.shl": 0x74,
  "i32.shr_u": 0x76,
  "f32.ne": 0x5c,
  "f32.add": 0x92,
  "f32.sub": 0x93,
  "f32.mul": 0x94,
  "f32.max": 0x97,
} as const;

/** SIMD opcodes (prefix 0xfd, then the LEB128 index). */
const SIMD = {
  "f32x4.splat": 0x13,
  "f32x4.lt": 0x43,
  "v128.and": 0x4e,
  "v128.andnot": 0x4f,
  "v128.or": 0x50,
  "v128.bitselect": 0x52,
  "i32x4.shl": 0xab,
  "i32x4.add": 0xae,
  "i32x4.gt_u": 0x3c,
  "f32x4.add": 0xe4,
  "f32x4.sub": 0xe5,
  "f32x4.mul": 0xe6,
  "f32x4.max": 0xe9,
  "f32x4.relaxed_madd": 0x105,
  "f32x4.relaxed_nmadd": 0x106,
} as const;

/** Loads and stores: opcode bytes and natural alignment (log2). */
const MEMORY = {
  "f32.load": [[0x2a], 2],
  "f32.store": [[0x38], 2],
  "v128.load": [[0xfd, ...uleb(0x00)], 4],
  "v128.load16x4_u": [[0xfd, ...uleb(0x04)], 3],
  "v128.load32_splat": [[0xfd, ...uleb(0x09)], 2],
  "v128.store": [[0xfd, ...uleb(0x0b)], 4],
} as const satisfies Record<string, readonly [readonly number[], number]>;

/** Instruction names by family. */
export type ScalarOp = keyof typeof SCALAR;
/** SIMD instruction names. */
export type SimdOp = keyof typeof SIMD;
/** Memory instruction names. */
export type MemoryOp = keyof typeof MEMORY;

/** A local variable (or parameter) of a function being written. */
export interface Local {
  readonly index: number;
  readonly type: ValType;
}

/** Writes one function body; structured control flow closes with `end()`. */
export class FunctionWriter {
  readonly #code: number[] = [];
  readonly #locals: ValType[] = [];
  readonly #paramCount: number;
  /** Parameters, in order. */
  readonly params: readonly Local[];

  constructor(readonly paramTypes: readonly ValType[], readonly resultTypes: readonly ValType[]) {
    this.#paramCount = paramTypes.length;
    this.params = paramTypes.map((type, index) => ({ index, type }));
  }

  /** Declares a new local. */
  local(type: ValType): Local {
    this.#locals.push(type);
    return { index: this.#paramCount + this.#locals.length - 1, type };
  }

  /** Declares `n` locals of one type. */
  locals(type: ValType, n: number): Local[] {
    return Array.from({ length: n }, () => this.local(type));
  }

  #emit(...bytes: number[]): this {
    for (const b of bytes) this.#code.push(b);
    return this;
  }

  get(l: Local): this {
    return this.#emit(0x20, ...uleb(l.index));
  }
  set(l: Local): this {
    return this.#emit(0x21, ...uleb(l.index));
  }
  tee(l: Local): this {
    return this.#emit(0x22, ...uleb(l.index));
  }
  i32(value: number): this {
    return this.#emit(0x41, ...sleb(value));
  }
  f32(value: number): this {
    const bytes = new Uint8Array(new Float32Array([value]).buffer);
    return this.#emit(0x43, ...bytes);
  }
  /** A v128 constant of four f32 lanes. */
  f32x4(value: number): this {
    const bytes = new Uint8Array(new Float32Array([value, value, value, value]).buffer);
    return this.#emit(0xfd, ...uleb(0x0c), ...bytes);
  }
  /** A v128 constant of four i32 lanes. */
  i32x4(value: number): this {
    const bytes = new Uint8Array(new Int32Array([value, value, value, value]).buffer);
    return this.#emit(0xfd, ...uleb(0x0c), ...bytes);
  }
  op(name: ScalarOp): this {
    return this.#emit(SCALAR[name]);
  }
  simd(name: SimdOp): this {
    return this.#emit(0xfd, ...uleb(SIMD[name]));
  }
  /** `f32x4.extract_lane lane`. */
  extractLane(lane: number): this {
    return this.#emit(0xfd, ...uleb(0x1f), lane);
  }
  /** A load or store at the address on the stack plus a constant byte `offset`. */
  mem(name: MemoryOp, offset = 0): this {
    const [opcode, align] = MEMORY[name];
    return this.#emit(...opcode, ...uleb(align), ...uleb(offset));
  }
  /** `block` with no result. */
  block(): this {
    return this.#emit(0x02, 0x40);
  }
  /** `loop` with no result. */
  loop(): this {
    return this.#emit(0x03, 0x40);
  }
  /** `if` with no result. */
  if(): this {
    return this.#emit(0x04, 0x40);
  }
  end(): this {
    return this.#emit(0x0b);
  }
  br(depth: number): this {
    return this.#emit(0x0c, ...uleb(depth));
  }
  brIf(depth: number): this {
    return this.#emit(0x0d, ...uleb(depth));
  }

  /** `local += delta` for an i32 local. */
  addTo(l: Local, delta: number | Local): this {
    this.get(l);
    if (typeof delta === "number") this.i32(delta);
    else this.get(delta);
    return this.op("i32.add").set(l);
  }

  /**
   * `for (i = from; i < limit; i += step) body()`, with `limit` a local; the body runs at
   * least zero times. `step` may be a constant or a local.
   */
  forRange(i: Local, from: number, limit: Local, step: number | Local, body: () => void): this {
    this.i32(from).set(i);
    this.block().get(i).get(limit).op("i32.ge_u").brIf(0);
    this.loop();
    body();
    this.addTo(i, step);
    this.get(i).get(limit).op("i32.lt_u").brIf(0);
    return this.end().end();
  }

  /** The encoded body: local declarations, code and the closing `end`. */
  encode(): number[] {
    const groups: number[][] = [];
    for (let i = 0; i < this.#locals.length;) {
      let n = 1;
      while (this.#locals[i + n] === this.#locals[i]) n++;
      groups.push([...uleb(n), TYPE_CODE[this.#locals[i]]]);
      i += n;
    }
    const body = [...vec(groups), ...this.#code, 0x0b];
    return [...uleb(body.length), ...body];
  }
}

/** A function to export from a module. */
export interface ExportedFunction {
  readonly name: string;
  readonly writer: FunctionWriter;
}

/** How the module's memory is imported (`env.memory`). */
export interface MemoryImport {
  readonly initialPages: number;
  readonly maximumPages: number;
  readonly shared: boolean;
}

/**
 * Encodes a module that imports `env.memory` and exports the given functions.
 *
 * @example
 * ```ts ignore
 * const f = new FunctionWriter(["i32"], ["i32"]);
 * f.get(f.params[0]).i32(1).op("i32.add");
 * const bytes = encodeModule([{ name: "inc", writer: f }], { initialPages: 1, maximumPages: 1, shared: false });
 * ```
 */
export function encodeModule(
  functions: readonly ExportedFunction[],
  memory: MemoryImport,
): Uint8Array<ArrayBuffer> {
  const section = (id: number, items: number[][]) => {
    const content = vec(items);
    return [id, ...uleb(content.length), ...content];
  };
  const types = functions.map(({ writer }) => [
    0x60,
    ...vec(writer.paramTypes.map((t) => [TYPE_CODE[t]])),
    ...vec(writer.resultTypes.map((t) => [TYPE_CODE[t]])),
  ]);
  const limits = memory.shared
    ? [0x03, ...uleb(memory.initialPages), ...uleb(memory.maximumPages)]
    : [0x01, ...uleb(memory.initialPages), ...uleb(memory.maximumPages)];
  const bytes = [
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, types),
    ...section(2, [[...name("env"), ...name("memory"), 0x02, ...limits]]),
    ...section(3, functions.map((_, i) => uleb(i))),
    ...section(7, functions.map((f, i) => [...name(f.name), 0x00, ...uleb(i)])),
    ...section(10, functions.map((f) => f.writer.encode())),
  ];
  return new Uint8Array(bytes);
}
