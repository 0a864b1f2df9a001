import fc from "fast-check";
import { assert, assertEquals, assertLessOrEqual } from "@std/assert";
import {
  assertPlan,
  attention,
  BlockKind,
  type Bounds,
  evaluate,
  explain,
  firstRow,
  headParams,
  interval,
  lower,
  mask,
  readsVar,
  tensorDesc,
  tile,
  tileLists,
  tileListsBytes,
  window,
} from "../../core/mod.ts";
import { cpuCaps } from "../../backends/cpu/mod.ts";
import { maskCase } from "../_arbitraries.ts";
import { bigBird, blockMask, slidingWindow } from "../../variants/mod.ts";

/** Each tile's kind from its own interval bound: the per-tile classification lists must equal. */
function perTileKind(
  m: Parameters<typeof interval>[0],
  s: { qLen: number; kvLen: number; tileQ: number; tileKv: number; pack: number },
  unit: { b: [number, number]; h: [number, number] },
  row: number,
  col: number,
): number {
  const last = Math.min(s.qLen * s.pack, (row + 1) * s.tileQ) - 1;
  const bounds: Bounds = {
    ...unit,
    qLen: [s.qLen, s.qLen],
    kvLen: [s.kvLen, s.kvLen],
    qIdx: [Math.floor((row * s.tileQ) / s.pack), Math.floor(last / s.pack)],
    kvIdx: [col * s.tileKv, Math.min(s.kvLen, (col + 1) * s.tileKv) - 1],
  };
  const [lo, hi] = interval(m, bounds);
  return lo >= 1 ? BlockKind.full : hi <= 0 ? BlockKind.empty : BlockKind.partial;
}

/** A tile's kind from every element of it (over the unit's batch elements and heads). */
function exactKind(
  m: Parameters<typeof interval>[0],
  s: { qLen: number; kvLen: number; tileQ: number; tileKv: number; pack: number },
  unit: { b: [number, number]; h: [number, number] },
  row: number,
  col: number,
): number {
  let seen = 0, total = 0;
  const rows = Math.min(s.qLen * s.pack, (row + 1) * s.tileQ);
  for (let b = unit.b[0]; b <= unit.b[1]; b++) {
    for (let h = unit.h[0]; h <= unit.h[1]; h++) {
      for (let f = row * s.tileQ; f < rows; f++) {
        for (let j = col * s.tileKv; j < Math.min(s.kvLen, (col + 1) * s.tileKv); j++) {
          const env = {
            b,
            h,
            qIdx: Math.floor(f / s.pack),
            kvIdx: j,
            qLen: s.qLen,
            kvLen: s.kvLen,
          };
          seen += evaluate(m, env) ? 1 : 0, total++;
        }
      }
    }
  }
  return seen === 0 ? BlockKind.empty : seen === total ? BlockKind.full : BlockKind.partial;
}

Deno.test("tileLists() lists every tile that is not empty, full ones exactly, at least as tight as a per-tile bound", () => {
  fc.assert(
    fc.property(
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
        const units = Math.ceil(3 / s.pack);
        assertEquals(lists.unitRow.length, 2 * units);
        // One layout per batch element only if the mask reads b, per head unit only if it reads h.
        const byB = readsVar(m.expr, "b");
        const byH = readsVar(m.expr, "h") || headParams(m.expr).length > 0;
        const layouts = (lists.rowStart.length - 1) / Math.max(1, lists.rows);
        assert(Number.isInteger(layouts) && layouts <= (byB ? 2 : 1) * (byH ? units : 1));
        for (let b = 0; b < 2; b++) {
          for (let u = 0; u < units; u++) {
            const unit = {
              b: byB ? [b, b] : [0, 1],
              h: byH ? [u * s.pack, Math.min(3, (u + 1) * s.pack) - 1] : [0, 2],
            } as { b: [number, number]; h: [number, number] };
            const base = firstRow(lists, 3, b, u * s.pack);
            for (let row = 0; row < lists.rows; row++) {
              const listed = new Map<number, number>();
              let previous = -1;
              for (let e = lists.rowStart[base + row]; e < lists.rowStart[base + row + 1]; e++) {
                assert(lists.tileCol[e] > previous, "increasing columns");
                previous = lists.tileCol[e];
                listed.set(lists.tileCol[e], lists.partial[e] ? BlockKind.partial : BlockKind.full);
              }
              for (let col = 0; col < lists.cols; col++) {
                const got = listed.get(col) ?? BlockKind.empty;
                const at = `${m.name} b ${b} unit ${u} row ${row} col ${col}`;
                // Sound: full and empty tiles are exactly so; and at least as tight as one
                // interval bound over the tile.
                if (got !== BlockKind.partial) {
                  assertEquals(exactKind(m.expr, s, unit, row, col), got, at);
                }
                const bound = perTileKind(m.expr, s, unit, row, col);
                if (bound !== BlockKind.partial) assertEquals(got, bound, at);
              }
            }
          }
        }
      },
    ),
    { numRuns: 50 },
  );
});

Deno.test("a sliding window's layout at N = 2^20 is linear in the tiles listed, not in tiles²", () => {
  const n = 2 ** 20, tileQ = 64, tileKv = 64;
  const lists = tileLists(window(511, 0), { qLen: n, kvLen: n, tileQ, tileKv });
  const rows = n / tileQ;
  // Each row lists the 8 or 9 tiles its 512 keys touch; the dense table would be 2^28 entries.
  assertLessOrEqual(lists.tileCol.length, rows * 9);
  assertEquals(tileListsBytes(lists), 4 + 4 * (rows + 1) + 5 * lists.tileCol.length);
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

Deno.test("tileLists() builds a layout per head only where the mask reads h, and keeps equal ones once", () => {
  const options = { qLen: 4096, kvLen: 4096, batch: 2, heads: 4, tileQ: 64, tileKv: 64 };
  const lists = tileLists(slidingWindow([1, 4000, 1, 4000]), options);
  assertEquals((lists.rowStart.length - 1) / lists.rows, 2, "two distinct windows");
  assertEquals(firstRow(lists, 4, 1, 2), firstRow(lists, 4, 0, 0));
  const tilesOf = (h: number) => {
    const base = firstRow(lists, 4, 0, h);
    return lists.rowStart[base + lists.rows] - lists.rowStart[base];
  };
  assertEquals(tilesOf(0), lists.rows, "a window of one key lists the diagonal tile only");
  assert(tilesOf(1) > 30 * lists.rows);
  // The shared layout of a mask that reads neither b nor h serves every unit.
  assertEquals(tileLists(slidingWindow(64), options).unitRow.join(), "0,0,0,0,0,0,0,0");
  // explain() counts each head's own tiles: half the heads cost almost nothing.
  const x = tensorDesc([1, 4, 4096, 64]);
  const perHead = explain(
    lower(mask(slidingWindow([1, 4000, 1, 4000]))(attention(x, x, x)), cpuCaps),
  );
  const widest = explain(lower(mask(slidingWindow(4000))(attention(x, x, x)), cpuCaps));
  assert(perHead.flops < 0.55 * widest.flops, `${perHead.flops} vs ${widest.flops}`);
});
