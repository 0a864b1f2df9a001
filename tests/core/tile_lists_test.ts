import fc from "fast-check";
import { assert, assertEquals, assertLessOrEqual } from "@std/assert";
import {
  assertPlan,
  attention,
  BlockKind,
  type Bounds,
  explain,
  interval,
  lower,
  mask,
  tensorDesc,
  tile,
  tileLists,
  tileListsBytes,
  window,
} from "../../core/mod.ts";
import { cpuCaps } from "../../backends/cpu/mod.ts";
import { maskCase } from "../_arbitraries.ts";
import { bigBird, blockMask } from "../../variants/mod.ts";

/** Each tile's kind from its own interval bound: the per-tile classification lists must equal. */
function perTileKind(
  m: Parameters<typeof interval>[0],
  s: { qLen: number; kvLen: number; tileQ: number; tileKv: number; pack: number },
  row: number,
  col: number,
): number {
  const last = Math.min(s.qLen * s.pack, (row + 1) * s.tileQ) - 1;
  const bounds: Bounds = {
    b: [0, 1],
    h: [0, 2],
    qLen: [s.qLen, s.qLen],
    kvLen: [s.kvLen, s.kvLen],
    qIdx: [Math.floor((row * s.tileQ) / s.pack), Math.floor(last / s.pack)],
    kvIdx: [col * s.tileKv, Math.min(s.kvLen, (col + 1) * s.tileKv) - 1],
  };
  const [lo, hi] = interval(m, bounds);
  return lo >= 1 ? BlockKind.full : hi <= 0 ? BlockKind.empty : BlockKind.partial;
}

Deno.test("tileLists() lists exactly the tiles a per-tile bound calls non-empty, in column order", () => {
  fc.assert(fc.property(
    maskCase,
    fc.record({
      qLen: fc.integer({ min: 0, max: 200 }),
      kvLen: fc.integer({ min: 0, max: 200 }),
      tileQ: fc.integer({ min: 1, max: 17 }),
      tileKv: fc.integer({ min: 1, max: 17 }),
      pack: fc.integer({ min: 1, max: 3 }),
    }),
    (m, s) => {
      const lists = tileLists(m.expr, { ...s, batch: 2, heads: 3 });
      assertEquals(lists.rowStart.length, lists.rows + 1);
      for (let row = 0; row < lists.rows; row++) {
        const listed = new Map<number, number>();
        let previous = -1;
        for (let e = lists.rowStart[row]; e < lists.rowStart[row + 1]; e++) {
          assert(lists.tileCol[e] > previous, "increasing columns");
          previous = lists.tileCol[e];
          listed.set(lists.tileCol[e], lists.partial[e] ? BlockKind.partial : BlockKind.full);
        }
        for (let col = 0; col < lists.cols; col++) {
          const want = perTileKind(m.expr, s, row, col);
          assertEquals(listed.get(col) ?? BlockKind.empty, want, `${m.name} row ${row} col ${col}`);
        }
      }
    },
  ));
});

Deno.test("a sliding window's layout at N = 2^20 is linear in the tiles listed, not in tiles²", () => {
  const n = 2 ** 20, tileQ = 64, tileKv = 64;
  const lists = tileLists(window(511, 0), { qLen: n, kvLen: n, tileQ, tileKv });
  const rows = n / tileQ;
  // Each row lists the 8 or 9 tiles its 512 keys touch; the dense table would be 2^28 entries.
  assertLessOrEqual(lists.tileCol.length, rows * 9);
  assertEquals(tileListsBytes(lists), 4 * (rows + 1) + 5 * lists.tileCol.length);
  assertLessOrEqual(tileListsBytes(lists), 1.3e6);
});

Deno.test("explain() reports the layout's bytes and density from the tile lists", () => {
  const x = tensorDesc([1, 1, 4096, 64]);
  const plan = lower(tile({ q: 64, kv: 64 })(mask(window(511, 0))(attention(x, x, x))), cpuCaps);
  const report = explain(plan);
  const lists = tileLists(window(511, 0), { qLen: 4096, kvLen: 4096, tileQ: 64, tileKv: 64 });
  assertEquals(report.layoutBytes, tileListsBytes(lists));
  assertEquals(report.density, lists.tileCol.length / (64 * 64));
  assert(report.summary.includes("layout"));
});

Deno.test("lower() picks a tile whose rows do not straddle the mask's query blocks, and says why", () => {
  const x = tensorDesc([1, 2, 1024, 64]);
  const caps = {
    ...cpuCaps,
    anyTile: false,
    flashTiles: [128, 64, 32].map((q) => ({
      maxHeadDim: 256,
      tile: { q, kv: q === 128 ? 64 : q },
    })),
  };
  const bird = bigBird({
    window: 1,
    globals: 1,
    randomBlocks: 1,
    block: 64,
    seed: 3,
    length: 1024,
  });
  const plan = lower(mask(bird)(attention(x, x, x)), caps);
  assertEquals([plan.tile, plan.tileReason], [{ q: 64, kv: 64 }, "query rows in blocks of 64"]);
  assertPlan(JSON.parse(JSON.stringify(plan)), caps);
  // Every listed tile is full or empty at 64 rows; at the preferred 128 most would be partial.
  const at = (q: number, kv: number) =>
    tileLists(bird, { qLen: 1024, kvLen: 1024, tileQ: q, tileKv: kv }).partial.reduce(
      (a, b) => a + b,
      0,
    );
  assertEquals(at(64, 64), 0);
  assert(at(128, 64) > 0);
  const causalPlan = lower(mask(window(1023, 0))(attention(x, x, x)), caps);
  assertEquals([causalPlan.tile, causalPlan.tileReason], [{ q: 128, kv: 64 }, "preferred"]);
  const requested = lower(tile({ q: 128, kv: 64 })(mask(bird)(attention(x, x, x))), caps);
  assertEquals([requested.tile, requested.tileReason], [{ q: 128, kv: 64 }, "requested"]);
  // A backend that runs any tile takes the block itself when no listed tile divides it.
  const blocks32 = blockMask([[true, false], [false, true]], { tileQ: 32, tileKv: 32 });
  const anyTile = lower(mask(blocks32)(attention(x, x, x)), {
    ...cpuCaps,
    flashTiles: [{ maxHeadDim: Infinity, tile: { q: 64, kv: 128 } }],
  });
  assertEquals([anyTile.tile, anyTile.tileReason], [
    { q: 32, kv: 128 },
    "query rows in blocks of 32",
  ]);
});
