/**
 * The flash kernel's online softmax, in f32: the score modifier and mask on each tile's scores,
 * the running row maximum `m` and denominator `l`, P written transposed for the P·V product, and
 * O rescaled by `e^(m_old - m_new)`.
 *
 * A row's keys are spread over the `TK` invocations of its row group, so its maximum and its
 * total are reduced across them: through workgroup memory with barriers, or, where the device
 * grants subgroups, by shuffles among the group's lanes. Both live here, the one place the
 * subgroup variant's arithmetic differs (its invocation layout is set in `flashFrame`).
 * @module
 */
import { HIDDEN_WGSL } from "./_common_wgsl.ts";
import { acc, type FlashFrame, range, ROWS, sreg, XYZW } from "./_flash_geometry.ts";

/**
 * The score modifier and mask on each score register. `mask_mod` and the bounds run only where
 * `check` (partial tiles and tiles past an edge); a hidden score becomes `NEG`.
 */
export function modifiedScoresWgsl(f: FlashFrame): string {
  const { params, groups, tk, kslots } = f;
  const modCall = (fn: string, x: string) =>
    `${fn}(i32(b), i32(hr[r]), i32(qr[r]), i32(kv_idx), i32(p.q_len), i32(p.kv_len), ${x})`;
  const elementwise = (r: number) =>
    groups.flatMap((gi) => range(4).map((c) => [gi, c])).map(([gi, c]) => {
      const x = `${sreg(r, gi)}.${XYZW[c]}`;
      return `{
        let kv_idx = k0 + tx + ${gi * tk + c * kslots}u;
        var x = ${x};${params.scoreMod ? `\n        x = ${modCall("score_mod", "x")};` : ""}
        if (check) {
          var ok = kv_idx < p.kv_len && rows_ok[r];${
        params.mask ? `\n          ok = ok && ${modCall("mask_mod", "0.0")};` : ""
      }
          if (!ok) { x = NEG; }
        }
        ${x} = x;
      }`.replaceAll("[r]", `[${r}]`);
    }).join("\n      ");
  return ROWS.map(elementwise).join("\n    ");
}

/**
 * The online softmax step for one key tile: the new row maxima `mx`, the rescale `alpha`, the
 * scores turned into weights (hidden ones to `HIDDEN_WGSL`), `l` updated, P stored transposed
 * and O rescaled.
 */
export function onlineSoftmaxWgsl(f: FlashFrame): string {
  const { groups, cols, tk, kslots } = f;
  const exps = ROWS.flatMap((r) =>
    groups.map((gi) => {
      const v = sreg(r, gi);
      return `${v} = select(exp(${v} - mx.${
        XYZW[r]
      }), vec4<f32>(${HIDDEN_WGSL}), ${v} == vec4<f32>(NEG));`;
    })
  ).join("\n    ");
  const sums = ROWS.map((r) =>
    `dot(${groups.map((gi) => sreg(r, gi)).join(" + ")}, vec4<f32>(1.0))`
  )
    .join(", ");
  const stores = groups.flatMap((gi) =>
    range(4).map((c) =>
      `sh[(tx + ${gi * tk + c * kslots}u) * BQ4 + ty] = vec4<f32>(${
        ROWS.map((r) => `${sreg(r, gi)}.${XYZW[c]}`).join(", ")
      });`
    )
  ).join("\n    ");
  const rescale = ROWS.flatMap((r) => cols.map((i) => `${acc(r, i)} *= alpha.${XYZW[r]};`))
    .join("\n    ");
  // P overwrites the Q/K chunks: every invocation must be done reading them (the
  // workgroup-memory row maximum's barriers see to it in the other variant).
  const guard = f.params.subgroups ? "workgroupBarrier();" : "";
  return `${rowMaxWgsl(f)}
    let alpha = exp(m - mx);
    m = mx;
    ${exps}
    l = l * alpha + vec4<f32>(${sums});
    ${guard}
    ${stores}
    ${rescale}`;
}

/**
 * `var mx`: each row's maximum over `m` and this tile's scores, through the row reductions'
 * workgroup slots (one `vec4` of four rows' maxima per invocation).
 */
function rowMaxWgsl(f: FlashFrame): string {
  const maxima = ROWS.map((r) => {
    const v = f.groups.map((gi) => sreg(r, gi)).reduce((a, b) => `max(${a}, ${b})`);
    return `max(max(${v}.x, ${v}.y), max(${v}.z, ${v}.w))`;
  }).join(",\n      ");
  if (f.params.subgroups) {
    return `var mx = vec4<f32>(${maxima});
    ${butterfly(f, "mx", "max")}
    mx = max(m, mx);`;
  }
  return `workgroupBarrier();
    sh[VOFF + tx * BQ4 + ty] = vec4<f32>(${maxima});
    workgroupBarrier();
    var mx = m;
    for (var t = 0u; t < TK; t++) { mx = max(mx, sh[VOFF + t * BQ4 + ty]); }`;
}

/**
 * `x = op(x, x of the lanes whose index differs in one bit below TK)`, for each such bit: after
 * it every invocation of a row group holds the group's reduction (a butterfly, no barrier).
 */
function butterfly(f: FlashFrame, x: string, op: "max" | "sum"): string {
  const steps = [];
  for (let bit = 1; bit < f.tk; bit *= 2) {
    const other = `subgroupShuffleXor(${x}, ${bit}u)`;
    steps.push(op === "max" ? `${x} = max(${x}, ${other});` : `${x} += ${other};`);
  }
  return steps.join("\n    ");
}

/** `var total`: each row's denominator, the sum of its invocations' `l`, after the last tile. */
export function rowTotalWgsl(f: FlashFrame): string {
  if (f.params.subgroups) {
    return `var total = l;
  ${butterfly(f, "total", "sum")}`;
  }
  return `workgroupBarrier();
  sh[VOFF + tx * BQ4 + ty] = l;
  workgroupBarrier();
  var total = vec4<f32>(0.0);
  for (var t = 0u; t < TK; t++) { total += sh[VOFF + t * BQ4 + ty]; }`;
}
