/**
 * Runs a test problem on a backend through the public API, optionally with BNHD views, f16
 * storage, a kernel family and a tile.
 * @module
 */
import {
  attention,
  compose,
  groupHeads,
  kernel,
  type KernelFamily,
  mask,
  permute,
  scoreMod,
  tile,
  type TileShape,
  type Transform,
} from "../core/mod.ts";
import type { Backend, Tensor } from "../backends/backend.ts";
import type { MaskCase, ScoreModCase, Shape } from "./_arbitraries.ts";

/** How to run a problem. */
export interface RunOptions {
  readonly mask?: MaskCase;
  readonly scoreMod?: ScoreModCase;
  readonly family?: KernelFamily;
  readonly tile?: TileShape;
  readonly bnhd?: boolean;
  readonly dtype?: "f32" | "f16";
  readonly lse?: boolean;
  readonly probs?: boolean;
}

/** BHND data stored as BNHD, returned as a permuted BHND view of it. */
export function bnhdTensor(
  backend: Backend,
  data: Float32Array,
  shape: readonly number[],
  dtype: "f32" | "f16",
): Tensor {
  const [b, hh, n, d] = shape;
  const moved = new Float32Array(data.length);
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < hh; hi++) {
      for (let ni = 0; ni < n; ni++) {
        for (let di = 0; di < d; di++) {
          moved[((bi * n + ni) * hh + hi) * d + di] = data[((bi * hh + hi) * n + ni) * d + di];
        }
      }
    }
  }
  return permute(backend.tensor(moved, [b, n, hh, d], dtype), [0, 2, 1, 3]);
}

/** A problem's q, k and v on `backend`, in `dtype` storage, as BNHD views when `bnhd`. */
export function problemTensors(
  backend: Backend,
  shape: Shape,
  data: { q: Float32Array; k: Float32Array; v: Float32Array },
  options: { readonly dtype?: "f32" | "f16"; readonly bnhd?: boolean } = {},
): Record<"q" | "k" | "v", Tensor> {
  const { batch, heads, kvHeads, qLen, kvLen, headDim, valueDim } = shape;
  const dtype = options.dtype ?? "f32";
  const make = (x: Float32Array, s: number[]) =>
    options.bnhd ? bnhdTensor(backend, x, s, dtype) : backend.tensor(x, s, dtype);
  return {
    q: make(data.q, [batch, heads, qLen, headDim]),
    k: make(data.k, [batch, kvHeads, kvLen, headDim]),
    v: make(data.v, [batch, kvHeads, kvLen, valueDim]),
  };
}

/** Runs and reads back `out` (and `lse`, `probs` when asked). */
export async function runProblem(
  backend: Backend,
  shape: Shape,
  data: { q: Float32Array; k: Float32Array; v: Float32Array },
  options: RunOptions = {},
): Promise<{ out: Float32Array; lse?: Float32Array; probs?: Float32Array; family: KernelFamily }> {
  const { q, k, v } = problemTensors(backend, shape, data, options);
  const transforms: Transform[] = [groupHeads()];
  if (options.mask) transforms.push(mask(options.mask.expr));
  if (options.scoreMod) transforms.push(scoreMod(options.scoreMod.expr));
  if (options.family) transforms.push(kernel(options.family));
  if (options.tile) transforms.push(tile(options.tile));
  const spec = compose(...transforms)(
    attention(q, k, v, { lse: options.lse, probs: options.probs }),
  );
  const plan = backend.plan(spec);
  const result = await backend.run(plan, { q, k, v });
  const read = async (t?: Tensor) => t && await backend.read(t);
  const out = await backend.read(result.out);
  const lse = await read(result.lse);
  const probs = await read(result.probs);
  for (const t of [q, k, v, result.out, result.lse, result.probs]) if (t) backend.release(t);
  return { out, lse, probs, family: plan.family };
}

/** Rounds data through f16, as f16 storage does. */
export function roundF16(x: Float32Array): Float32Array {
  return Float32Array.from(new Float16Array(x));
}
