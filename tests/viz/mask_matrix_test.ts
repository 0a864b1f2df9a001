import fc from "fast-check";
import { assertEquals, assertThrows } from "@std/assert";
import {
  and,
  causal,
  eq,
  type Expr,
  h,
  kvIdx,
  lt,
  not,
  or,
  score,
  window,
} from "../../core/mod.ts";
import { maskMatrix } from "../../viz/mod.ts";
import { maskCase } from "../_arbitraries.ts";

const rows = (m: { cols: number; data: ArrayLike<number> }) =>
  Array.from(
    { length: m.data.length / m.cols },
    (_, r) => Array.from(m.data).slice(r * m.cols, (r + 1) * m.cols).join(""),
  );

Deno.test("maskMatrix() draws a composed mask, bottom-right aligned", () => {
  // A causal window of 2 keys, or the first key (an attention sink).
  const sinkWindow = or(and(causal(), window(1, 0)), eq(kvIdx, 0));
  assertEquals(rows(maskMatrix(sinkWindow, { qLen: 4, kvLen: 4 })), [
    "1000",
    "1100",
    "1110",
    "1011",
  ]);
  assertEquals(rows(maskMatrix(not(causal()), { qLen: 2, kvLen: 4 })), ["0001", "0000"]);
});

Deno.test("maskMatrix() evaluates at the given head", () => {
  const causalExceptHead1 = or(causal(), eq(h, 1));
  assertEquals(rows(maskMatrix(causalExceptHead1, { qLen: 2, kvLen: 2, h: 0 })), ["10", "11"]);
  assertEquals(rows(maskMatrix(causalExceptHead1, { qLen: 2, kvLen: 2, h: 1 })), ["11", "11"]);
});

Deno.test("maskMatrix() agrees with the mask's predicate on random masks", () => {
  fc.assert(
    fc.property(
      maskCase,
      fc.integer({ min: 1, max: 24 }),
      fc.integer({ min: 1, max: 24 }),
      fc.nat(3),
      (c, nq, nk, head) => {
        const m = maskMatrix(c.expr, { qLen: nq, kvLen: nk, h: head });
        for (let i = 0; i < nq; i++) {
          for (let j = 0; j < nk; j++) {
            if (m.data[i * nk + j] !== (c.allowed(0, head, i, j, nq, nk) ? 1 : 0)) return false;
          }
        }
        return true;
      },
    ),
    { numRuns: 100 },
  );
});

Deno.test("maskMatrix() rejects a non-bool Expr and bad sizes", () => {
  assertThrows(
    () => maskMatrix(score as Expr, { qLen: 2, kvLen: 2 }),
    TypeError,
    "Cannot build mask matrix: mask must be bool, current type is float",
  );
  const cases: [string, Record<string, number>][] = [
    ["qLen must be an integer >= 1, current value is 0", { qLen: 0, kvLen: 2 }],
    ["kvLen must be an integer >= 1, current value is 2.5", { qLen: 2, kvLen: 2.5 }],
    ["h must be an integer >= 0, current value is -1", { qLen: 2, kvLen: 2, h: -1 }],
  ];
  for (const [message, options] of cases) {
    assertThrows(
      () => maskMatrix(lt(kvIdx, 3), options as { qLen: number; kvLen: number }),
      RangeError,
      `Cannot build mask matrix: ${message}`,
    );
  }
});
