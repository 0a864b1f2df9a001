/**
 * Non-finite data on both backends, both kernel families, f32 and f16: NaN or Inf in what a row
 * sees reaches that row by IEEE arithmetic (as in PyTorch's SDPA); keys it cannot see (masked,
 * in skipped empty tiles) never do, whatever their k and v hold. Each case is checked against a
 * float64 reference of exactly that documented semantics.
 * @module
 */
import { assert, assertEquals } from "@std/assert";
import { causal, div, kvIdx, lt, max, mul, score, tanh, window } from "../../core/mod.ts";
import type { Backend } from "../../backends/backend.ts";
import { createCpuBackend } from "../../backends/cpu/mod.ts";
import { type MaskCase, problemData, type ScoreModCase, type Shape } from "../_arbitraries.ts";
import { roundF16, runProblem } from "../_run.ts";
import { gpu } from "../_webgpu.ts";

// Both CPU paths: the WebAssembly kernels and the TypeScript reference.
const cpus = [createCpuBackend(), createCpuBackend({ kernels: "typescript" })];
const backends: Backend[] = gpu ? [...cpus, gpu] : cpus;

type Data = { q: Float32Array; k: Float32Array; v: Float32Array };

/** The documented semantics in float64: IEEE over visible keys, hidden keys skipped. */
function reference(shape: Shape, data: Data, m?: MaskCase, mod?: ScoreModCase) {
  const { heads, qLen, kvLen, headDim, valueDim } = shape;
  const out = new Float64Array(heads * qLen * valueDim), lse = new Float64Array(heads * qLen);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < qLen; i++) {
      const seen: number[] = [], scores: number[] = [];
      for (let j = 0; j < kvLen; j++) {
        if (m && !m.allowed(0, h, i, j, qLen, kvLen)) continue;
        let dot = 0;
        for (let d = 0; d < headDim; d++) {
          dot += data.q[(h * qLen + i) * headDim + d] * data.k[(h * kvLen + j) * headDim + d];
        }
        const s = dot / Math.sqrt(headDim);
        seen.push(j), scores.push(mod ? mod.modify(s, 0, h, i, j) : s);
      }
      const max = scores.reduce((a, s) => Math.max(a, s), -Infinity);
      const weights = scores.map((s) => max === -Infinity ? 0 : Math.exp(s - max));
      const sum = weights.reduce((a, w) => a + w, 0);
      lse[h * qLen + i] = sum <= 0 ? -Infinity : max + Math.log(sum);
      for (let d = 0; d < valueDim; d++) {
        const acc = seen.reduce(
          (a, j, n) => a + weights[n] * data.v[(h * kvLen + j) * valueDim + d],
          0,
        );
        out[(h * qLen + i) * valueDim + d] = acc * (sum <= 0 ? 0 : 1 / sum);
      }
    }
  }
  return { out, lse };
}

/** NaN where expected NaN, the same infinity where expected infinite, else within `tol`. */
function assertMatches(
  actual: Float32Array,
  expected: Float64Array,
  relative: number,
  label: string,
): void {
  assertEquals(actual.length, expected.length, label);
  for (let i = 0; i < actual.length; i++) {
    const [a, e] = [actual[i], expected[i]];
    const at = `${label} [${i}]: got ${a}, want ${e}`;
    if (Number.isNaN(e)) assert(Number.isNaN(a), at);
    else if (!Number.isFinite(e)) assertEquals(a, e, at);
    else assert(Math.abs(a - e) <= 2e-5 + relative * Math.abs(e), at);
  }
}

const shape: Shape = {
  batch: 1,
  heads: 2,
  kvHeads: 2,
  qLen: 20,
  kvLen: 20,
  headDim: 8,
  valueDim: 8,
};

/** Element offsets of a row of q, k or v. */
const qRow = (h: number, i: number) => (h * shape.qLen + i) * shape.headDim;
const kRow = (h: number, j: number) => (h * shape.kvLen + j) * shape.headDim;
const vRow = (h: number, j: number) => (h * shape.kvLen + j) * shape.valueDim;

const causalCase: MaskCase = {
  name: "causal",
  expr: causal(),
  allowed: (_b, _h, i, j, nq, nk) => j <= i + nk - nq,
};
const windowCase: MaskCase = {
  name: "window(2,0)",
  expr: window(2, 0),
  allowed: (_b, _h, i, j, nq, nk) => j >= i + nk - nq - 2 && j <= i + nk - nq,
};
const prefixCase: MaskCase = {
  name: "prefix(3)",
  expr: lt(kvIdx, 3),
  allowed: (_b, _h, _i, j) => j < 3,
};

interface Case {
  readonly name: string;
  readonly mask?: MaskCase;
  readonly scoreMod?: ScoreModCase;
  /** Writes the non-finite values into fresh data. */
  readonly poison: (d: Data) => void;
  /** What must hold of the result besides matching the reference (so no case is vacuous). */
  readonly check: (out: Float32Array, lse: Float32Array) => void;
}

const rowOut = (out: Float32Array, h: number, i: number) =>
  out.subarray(qRow(h, i), qRow(h, i) + shape.valueDim);
const allFinite = (x: ArrayLike<number>) => Array.from(x).every(Number.isFinite);

const cases: Case[] = [
  {
    name: "NaN in a query row makes that row's out and lse NaN, and only that row",
    poison: (d) => void (d.q[qRow(1, 5) + 3] = NaN),
    check: (out, lse) => {
      assert(rowOut(out, 1, 5).every(Number.isNaN) && Number.isNaN(lse[20 + 5]));
      assert(allFinite(rowOut(out, 1, 4)) && allFinite(rowOut(out, 0, 5)));
    },
  },
  {
    name: "softcap passes a NaN score on (its tanh does not clamp NaN away)",
    scoreMod: {
      name: "softcap(5)",
      expr: mul(5, tanh(div(score, 5))),
      modify: (x) => 5 * Math.tanh(x / 5),
    },
    poison: (d) => void (d.q[qRow(0, 1) + 2] = NaN),
    check: (out) => assert(rowOut(out, 0, 1).every(Number.isNaN) && allFinite(rowOut(out, 0, 0))),
  },
  {
    name: "a max() score modifier passes a NaN score on",
    scoreMod: { name: "max(score, -1)", expr: max(score, -1), modify: (x) => Math.max(x, -1) },
    poison: (d) => void (d.k[kRow(1, 0)] = NaN),
    check: (out) => assert(rowOut(out, 1, 3).every(Number.isNaN) && allFinite(rowOut(out, 0, 3))),
  },
  {
    name: "+Infinity in a query facing positive keys makes the row NaN",
    poison: (d) => {
      d.q[qRow(0, 2)] = Infinity;
      for (let j = 0; j < shape.kvLen; j++) d.k[kRow(0, j)] = 0.25;
    },
    check: (out, lse) => assert(rowOut(out, 0, 2).every(Number.isNaN) && Number.isNaN(lse[2])),
  },
  {
    name: "-Infinity in a query facing positive keys gives zeros and lse -Infinity",
    poison: (d) => {
      d.q[qRow(0, 7)] = -Infinity;
      for (let j = 0; j < shape.kvLen; j++) d.k[kRow(0, j)] = 0.25;
    },
    check: (out, lse) => assert(rowOut(out, 0, 7).every((x) => x === 0) && lse[7] === -Infinity),
  },
  {
    name: "NaN in a visible key reaches exactly the rows that see it (causal)",
    mask: causalCase,
    poison: (d) => void (d.k[kRow(0, 9) + 1] = NaN),
    check: (out) => {
      assert(allFinite(rowOut(out, 0, 8)) && rowOut(out, 0, 9).every(Number.isNaN));
      assert(rowOut(out, 0, 19).every(Number.isNaN) && allFinite(rowOut(out, 1, 19)));
    },
  },
  {
    name: "NaN and Inf in a visible value reach only their dimensions",
    poison: (d) => {
      d.v[vRow(1, 4) + 2] = NaN;
      d.v[vRow(1, 6) + 5] = Infinity;
    },
    check: (out) => {
      const row = rowOut(out, 1, 0);
      assert(Number.isNaN(row[2]) && row[5] === Infinity && Number.isFinite(row[0]));
    },
  },
  {
    name: "a visible key of weight 0 still passes NaN in its v on (IEEE 0·NaN, as in PyTorch)",
    poison: (d) => {
      d.q[qRow(0, 6)] = 1000;
      d.k[kRow(0, 3)] = -1000;
      d.v.fill(NaN, vRow(0, 3), vRow(0, 4));
    },
    check: (out) => assert(rowOut(out, 0, 6).every(Number.isNaN) && allFinite(rowOut(out, 1, 6))),
  },
  {
    name: "NaN and Inf in masked keys and values never reach a row (causal)",
    mask: causalCase,
    poison: (d) => {
      for (const j of [12, 17, 19]) {
        d.k.fill(NaN, kRow(0, j), kRow(0, j) + shape.headDim);
        d.v.fill(Infinity, vRow(0, j), vRow(0, j) + shape.valueDim);
      }
    },
    check: (out) => assert(allFinite(rowOut(out, 0, 11)) && allFinite(rowOut(out, 0, 0))),
  },
  {
    name: "stale NaN keys outside a sliding window never reach a row",
    mask: windowCase,
    poison: (d) => {
      d.k.fill(NaN, kRow(1, 0), kRow(1, 10));
      d.v.fill(NaN, vRow(1, 0), vRow(1, 10));
    },
    check: (out) => {
      assert(allFinite(rowOut(out, 1, 12)) && allFinite(rowOut(out, 1, 19)));
      assert(rowOut(out, 1, 11).every(Number.isNaN), "row 11 sees key 9");
    },
  },
  {
    name: "NaN keys in skipped empty tiles never reach a row (prefix of 3 keys)",
    mask: prefixCase,
    poison: (d) => {
      d.k.fill(NaN, kRow(0, 3), kRow(0, 20));
      d.v.fill(-Infinity, vRow(0, 3), vRow(0, 20));
    },
    check: (out) => assert(allFinite(out)),
  },
];

/** f16 inputs and outputs round: compare relative to half an f16 ulp. */
const RELATIVE = { f32: 1e-5, f16: 2 ** -10 };

for (const backend of backends) {
  Deno.test(`${backend.name} (${backend.caps.engine}) non-finite data: the documented semantics, per case`, async (t) => {
    for (const c of cases) {
      for (const dtype of ["f32", "f16"] as const) {
        for (const family of ["flash", "materialized"] as const) {
          const label = `${c.name} (${family}, ${dtype})`;
          await t.step(label, async () => {
            const raw = problemData(shape, 21);
            const data = dtype === "f16"
              ? { q: roundF16(raw.q), k: roundF16(raw.k), v: roundF16(raw.v) }
              : raw;
            c.poison(data);
            const ref = reference(shape, data, c.mask, c.scoreMod);
            // Small CPU flash tiles give it full, partial and empty tiles on 20 rows too.
            const tile = family === "flash" && backend.name === "cpu" ? { q: 4, kv: 8 } : undefined;
            const got = await runProblem(backend, shape, data, {
              mask: c.mask,
              scoreMod: c.scoreMod,
              family,
              dtype,
              tile,
              lse: true,
            });
            assertMatches(got.out, ref.out, RELATIVE[dtype], `${label} out`);
            assertMatches(got.lse!, ref.lse, 1e-5, `${label} lse`);
            c.check(got.out, got.lse!);
          });
        }
      }
    }
  });

  Deno.test(`${backend.name} (${backend.caps.engine}) probabilities: hidden keys 0 even in a NaN row, visible keys NaN`, async () => {
    const data = problemData(shape, 5);
    data.q[qRow(0, 4)] = NaN;
    data.k.fill(NaN, kRow(0, 15), kRow(0, 16));
    const { probs } = await runProblem(backend, shape, data, { mask: causalCase, probs: true });
    const row = (h: number, i: number) => probs!.subarray((h * 20 + i) * 20, (h * 20 + i + 1) * 20);
    assert(row(0, 4).subarray(0, 5).every(Number.isNaN), "visible keys of the NaN row");
    assert(row(0, 4).subarray(5).every((p) => p === 0), "hidden keys of the NaN row");
    assert(row(0, 14).every(Number.isFinite), "row 14 cannot see key 15");
    assert(row(0, 15).subarray(0, 16).every(Number.isNaN), "row 15 sees key 15");
    assert(row(1, 15).every(Number.isFinite), "the other head is untouched");
  });
}
