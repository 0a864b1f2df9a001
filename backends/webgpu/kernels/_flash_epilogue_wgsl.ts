/**
 * The flash kernel's epilogue: each row's denominator (with its sink logit, if any), O divided
 * by it and written out, and the row's log-sum-exp. A row with no visible key (total 0) writes
 * zeros and `lse = -Infinity` (or its sink logit), never NaN. With key splits, each split writes
 * its share's state `split_stride` rows after the previous one's, for the merge pass.
 * @module
 */
import { NEG_INF_WGSL } from "./_common_wgsl.ts";
import { acc, type FlashFrame, ROWS, XYZW } from "./_flash_geometry.ts";
import { rowTotalWgsl } from "./_flash_softmax_wgsl.ts";

/** From the end of the key tiles to the end of `main`. */
export function epilogueWgsl(f: FlashFrame): string {
  return `${rowTotalWgsl(f)}
  ${normalizerWgsl(f)}
  ${ROWS.map((r) => rowOutputWgsl(f, r)).join("\n  ")}`;
}

/**
 * `inv`: what each row's O is multiplied by. A key split writes its share's plain state; the
 * merge pass adds the sink logit once.
 */
function normalizerWgsl(f: FlashFrame): string {
  const plain = `select(1.0 / total, vec4<f32>(0.0), total <= vec4<f32>(0.0))`;
  return f.params.sinkLogits
    ? `// Each row's sink logit joins its denominator: out = acc · e^(m - top) / denom.
  let sinks = vec4<f32>(${
      ROWS.map((r) => `sink_logit(i32(b), i32(hr[${r}]), 0, 0, 0, 0, 0.0)`).join(", ")
    });
  let top = max(m, sinks);
  let kept = exp(m - top);
  let denom = total * kept + exp(sinks - top);
  let split_state = p.splits > 1u;
  let inv = select(select(kept / denom, vec4<f32>(0.0), total <= vec4<f32>(0.0)), ${plain}, split_state);`
    : `let inv = ${plain};`;
}

/** Row `r`'s output columns (this invocation's) and, from the first invocation, its lse. */
function rowOutputWgsl(f: FlashFrame, r: number): string {
  const x = XYZW[r];
  const plain = `select(m.${x} + log(total.${x}), ${NEG_INF_WGSL}, total.${x} <= 0.0)`;
  const lse = f.params.sinkLogits
    ? `select(select(top.${x} + log(denom.${x}), sinks.${x}, total.${x} <= 0.0), ${plain}, split_state);`
    : `${plain};`;
  return `if (rows_ok[${r}]) {
    let row = (b * p.heads + hr[${r}]) * p.q_len + qr[${r}] + wg.z * p.split_stride;
    let o = row * DV;
    ${
    f.cols.map((i) =>
      `{
      let v = ${acc(r, i)} * inv.${x};
      let d0 = (tx + ${i * f.tk}u) * 4u;
      for (var c = 0u; c < 4u; c++) {
        if (d0 + c < DV) { out_buf[o + d0 + c] = v[c]; }
      }
    }`
    ).join("\n    ")
  }
    if (tx == 0u) {
      lse_buf[min(row, arrayLength(&lse_buf) - 1u)] =
        ${lse}
    }
  }`;
}
