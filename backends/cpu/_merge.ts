/**
 * `mergeStates` on the CPU: every state read through its view, merged in float64.
 * @module
 */
import { numel } from "../../core/tensor_desc.ts";
import { gatherStrided } from "../_strided.ts";
import type { AttentionState } from "../backend.ts";
import type { StateSizes } from "../_check_states.ts";
import { dataOf, type HostArray, hostArray } from "./_storage.ts";

/** The merged `out` (in the states' dtype) and `lse` of checked states. */
export function mergeHostStates(
  states: readonly AttentionState[],
  { rows, width }: StateSizes,
): { out: HostArray; lse: Float32Array } {
  const read = (t: AttentionState["out"]) =>
    gatherStrided(dataOf(t), t, new Float32Array(numel(t)));
  const outs = states.map((s) => read(s.out)), lses = states.map((s) => read(s.lse));
  const out = hostArray(states[0].out.dtype, rows * width), lse = new Float32Array(rows);
  const acc = new Float64Array(width);
  for (let r = 0; r < rows; r++) {
    let top = -Infinity;
    for (const l of lses) top = Math.max(top, l[r]);
    if (top === -Infinity) {
      lse[r] = -Infinity;
      continue;
    }
    acc.fill(0);
    let total = 0;
    outs.forEach((o, s) => {
      const w = Math.exp(lses[s][r] - top);
      total += w;
      // A state of weight 0 saw no key: its zeros must not meet a NaN weight.
      if (w > 0 || w !== w) { for (let d = 0; d < width; d++) acc[d] += w * o[r * width + d]; }
    });
    for (let d = 0; d < width; d++) out[r * width + d] = acc[d] / total;
    lse[r] = top + Math.log(total);
  }
  return { out, lse };
}
