/**
 * WGSL fragments shared by kernel families: the parameter block, element loads for f32 and
 * packed f16 storage, and the mask/score splice point.
 * @module
 */
import { type Expr, headParam } from "../../../core/expr.ts";
import { type LiteralTable, toWgsl } from "../../../core/to_wgsl.ts";
import type { DType } from "../../../core/tensor_desc.ts";

/** Fields of the uniform block every attention kernel reads, in order (all u32 but `scale`). */
export const PARAM_FIELDS = [
  "q_len",
  "kv_len",
  "heads",
  "group",
  "rows",
  "cols",
  "head_base",
  "scale",
  "q_off",
  "q_sb",
  "q_sh",
  "q_sn",
  "q_sd",
  "k_off",
  "k_sb",
  "k_sh",
  "k_sn",
  "k_sd",
  "v_off",
  "v_sb",
  "v_sh",
  "v_sn",
  "v_sd",
  "head_dim",
  "value_dim",
  "pack",
  "splits",
  "split_stride",
] as const;

/** The `Params` struct and its uniform binding. */
export function paramsWgsl(): string {
  const fields = PARAM_FIELDS.map((f) => `  ${f}: ${f === "scale" ? "f32" : "u32"},`).join("\n");
  return `struct Params {\n${fields}\n}\n@group(0) @binding(0) var<uniform> p: Params;\n`;
}

/**
 * Storage bindings for q, k, v (f32, or f16 packed two per u32, which needs no `shader-f16`)
 * and `load_q/k/v(element index) -> f32`.
 */
export function inputsWgsl(dtype: DType): string {
  const type = dtype === "f16" ? "u32" : "f32";
  const bindings = ["q", "k", "v"].map((name, i) =>
    `@group(0) @binding(${i + 1}) var<storage, read> ${name}_buf: array<${type}>;`
  ).join("\n");
  const loads = ["q", "k", "v"].map((name) =>
    dtype === "f16"
      ? `fn load_${name}(i: u32) -> f32 { return unpack2x16float(${name}_buf[i >> 1u])[i & 1u]; }`
      : `fn load_${name}(i: u32) -> f32 { return ${name}_buf[i]; }`
  ).join("\n");
  return `${bindings}\n${loads}\n`;
}

/** Binding of the lifted literals (see `modifierLiterals`). */
export const LITERALS_BINDING = 7;

/**
 * The splice point: `mask_mod` and `score_mod` generated from the plan's Exprs, and
 * `sink_logit` (the head's sink logit) when the plan has sink logits, their constants read from
 * a uniform block so that new window sizes, caps or logits reuse the pipeline.
 */
export function modifiersWgsl(
  mask: Expr | undefined,
  scoreMod: Expr | undefined,
  sinkLogits?: readonly number[],
): string {
  const table = { values: [], kinds: [] } as LiteralTable;
  const fns = (mask ? toWgsl("mask_mod", mask, table) : "") +
    (scoreMod ? toWgsl("score_mod", scoreMod, table) : "") +
    (sinkLogits ? toWgsl("sink_logit", headParam(sinkLogits), table) : "");
  if (table.values.length === 0) return fns;
  const vec4s = Math.ceil(table.values.length / 4);
  return `@group(0) @binding(${LITERALS_BINDING}) var<uniform> lits: array<vec4<u32>, ${vec4s}>;\n${fns}`;
}

/** The literal table of a plan's modifiers, in the order `modifiersWgsl` reads it. */
export function modifierLiterals(
  mask: Expr | undefined,
  scoreMod: Expr | undefined,
  sinkLogits?: readonly number[],
): LiteralTable {
  const table = { values: [], kinds: [] } as LiteralTable;
  if (mask) toWgsl("mask_mod", mask, table);
  if (scoreMod) toWgsl("score_mod", scoreMod, table);
  if (sinkLogits) toWgsl("sink_logit", headParam(sinkLogits), table);
  return table;
}

/**
 * Masking and non-finite data, shared by both families. A masked score is set to `NEG`, a large
 * negative stand-in for -Infinity (WGSL has no infinity literal), and its weight to `-0.0`
 * (`HIDDEN`): it adds nothing to a row's sum, and `P · V` skips it by that sign bit, so NaN or
 * Inf in a hidden key's v never reaches the row. Real weights are `exp()` values, never `-0.0`.
 * Everything else is left to IEEE arithmetic: a NaN or +Infinity score gives NaN weights and a
 * NaN row, which the final `select`s keep (they test `<= 0`, which NaN fails, rather than `> 0`).
 */
export const NEG_WGSL = `const NEG: f32 = -3.0e38f;
fn is_hidden(p: f32) -> bool { return bitcast<u32>(p) == 0x80000000u; }
`;

/** The weight of a hidden key, -0.0, as a bit pattern. */
export const HIDDEN_WGSL = "bitcast<f32>(0x80000000u)";

/** Writes -Infinity as a bit pattern. */
export const NEG_INF_WGSL = "bitcast<f32>(0xff800000u)";

/**
 * `first` and `last`: the entries of the plan's tile lists that workgroup split `wg.z` walks for
 * query tile `rowTile` of `unit`. `tiles` holds [row offsets at, entries at, first row per
 * unit..., row offsets..., entries...]; the unit's row r lists entries e in
 * [starts[base + r], starts[base + r + 1]), each (col << 1) | partial, and each of `p.splits`
 * splits takes an even share (Flash-Decoding). Read-only storage indexed by uniform values is
 * uniform, so barriers in the loop over them stay legal.
 */
export function tileShareWgsl(rowTile: string): string {
  return `let starts = tiles[0];
  let entries = tiles[1];
  let base = tiles[2u + unit] + ${rowTile};
  let row_first = tiles[starts + base];
  let row_last = tiles[starts + base + 1u];
  let share = (row_last - row_first + p.splits - 1u) / p.splits;
  let first = min(row_last, row_first + wg.z * share);
  let last = min(row_last, first + share);`;
}
