/**
 * Checks of `mergeStates` inputs, shared by the built-in backends: two or more states
 * `{ out, lse }` of one backend, `lse` f32 of one shape, `out` of that shape plus a value
 * dimension, all `out`s of one dtype and width. Thrown before any work, naming the field.
 * @module
 */
import { fail } from "../core/_check.ts";
import type { AttentionState } from "./backend.ts";

/** Sizes of checked states. */
export interface StateSizes {
  /** Rows: elements of an `lse`. */
  readonly rows: number;
  /** Value columns per row. */
  readonly width: number;
}

/** Checks a list of states (kinds and sizes; ownership is the backend's to check). */
export function checkStates(states: unknown): StateSizes {
  const context = "merge states";
  if (!Array.isArray(states)) fail("type", context, "states", "an array of { out, lse }", states);
  if (states.length < 2) fail("range", context, "states.length", "at least 2", states.length);
  const [first] = states as AttentionState[];
  for (const [i, s] of (states as AttentionState[]).entries()) {
    if (s === null || typeof s !== "object" || !s.out || !s.lse) {
      fail("type", context, `states[${i}]`, "{ out, lse } tensors", s);
    }
    if (s.lse.dtype !== "f32") fail("type", context, `states[${i}].lse.dtype`, "f32", s.lse.dtype);
    if (s.out.dtype !== first.out.dtype) {
      fail(
        "type",
        context,
        `states[${i}].out.dtype`,
        `states[0]'s (${first.out.dtype})`,
        s.out.dtype,
      );
    }
    if (String(s.lse.shape) !== String(first.lse.shape)) {
      fail("range", context, `states[${i}].lse.shape`, `[${first.lse.shape}]`, s.lse.shape);
    }
    const want = [...first.lse.shape, first.out.shape.at(-1)];
    if (String(s.out.shape) !== String(want) || first.out.shape.length !== want.length) {
      fail(
        "range",
        context,
        `states[${i}].out.shape`,
        `[${want}] (lse's shape and a value dim)`,
        s.out.shape,
      );
    }
  }
  const rows = first.lse.shape.reduce((a, b) => a * b, 1);
  return { rows, width: first.out.shape.at(-1) ?? 0 };
}
