import fc from "fast-check";
import { assert, assertEquals } from "@std/assert";
import {
  attention,
  BlockKind,
  causal,
  classifyBlocks,
  compose,
  groupHeads,
  kernel,
  lower,
  mask,
  tensorDesc,
  tile,
} from "../../core/mod.ts";
import { cpuCaps } from "../../backends/cpu/mod.ts";
import { layoutMatrix, maskMatrix } from "../../viz/mod.ts";
import { maskCase } from "../_arbitraries.ts";

Deno.test("layoutMatrix() spreads each tile's kind over the scores it covers", () => {
  const x = tensorDesc([1, 1, 5, 8]);
  const plan = lower(tile({ q: 2, kv: 3 })(mask(causal())(attention(x, x, x))), cpuCaps);
  const m = layoutMatrix(plan);
  assertEquals([m.rows, m.cols], [5, 5]);
  const layout = classifyBlocks(causal(), { qLen: 5, kvLen: 5, tileQ: 2, tileKv: 3 });
  for (let i = 0; i < 5; i++) {
    for (let j = 0; j < 5; j++) {
      const kind = layout.kinds[Math.floor(i / 2) * layout.cols + Math.floor(j / 3)];
      assertEquals(m.data[i * 5 + j], kind);
    }
  }
});

Deno.test("layoutMatrix() has a row per packed head when grouped heads share tiles", () => {
  const [q, kv] = [tensorDesc([1, 4, 6, 8]), tensorDesc([1, 2, 6, 8])];
  const caps = { ...cpuCaps, packGroups: true };
  const plan = lower(
    compose(groupHeads(), mask(causal()), kernel("flash"))(attention(q, kv, kv)),
    caps,
  );
  assertEquals(plan.pack, 2);
  const m = layoutMatrix(plan);
  assertEquals([m.rows, m.cols], [12, 6]);
});

Deno.test("layoutMatrix() never calls a tile empty where the mask shows a key, nor full where it hides one", () => {
  fc.assert(
    fc.property(
      maskCase,
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 1, max: 40 }),
      fc.constantFrom(1, 4, 8),
      fc.constantFrom(1, 4, 16),
      (c, nq, nk, tq, tk) => {
        const [q, k] = [tensorDesc([1, 1, nq, 8]), tensorDesc([1, 1, nk, 8])];
        const plan = lower(
          tile({ q: tq, kv: tk })(mask(c.expr)(attention(q, k, k))),
          { ...cpuCaps, anyTile: true },
        );
        const kinds = layoutMatrix(plan).data;
        const visible = maskMatrix(c.expr, { qLen: nq, kvLen: nk }).data;
        for (let e = 0; e < nq * nk; e++) {
          if (kinds[e] === BlockKind.empty) assert(visible[e] === 0, `${c.name} at ${e}`);
          if (kinds[e] === BlockKind.full) assert(visible[e] === 1, `${c.name} at ${e}`);
        }
      },
    ),
    { numRuns: 100 },
  );
});
