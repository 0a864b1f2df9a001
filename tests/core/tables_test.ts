import fc from "fast-check";
import { assert, assertEquals, assertNotEquals, assertThrows } from "@std/assert";
import {
  add,
  assertExpr,
  evaluate,
  exprKey,
  interval,
  kvIdx,
  lookup,
  mul,
  score,
  searchSorted,
  substituteScore,
  toWgsl,
} from "../../core/mod.ts";

Deno.test("lookup() reads values[index] and 0 outside the list", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: -50, max: 50 }), { minLength: 1, maxLength: 20 }),
      fc.integer({ min: -5, max: 30 }),
      (values, i) => {
        assertEquals(
          evaluate(lookup(values, kvIdx), { kvIdx: i }),
          i >= 0 && i < values.length ? values[i] : 0,
        );
      },
    ),
  );
});

Deno.test("searchSorted() counts the entries <= x", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: -50, max: 50 }), { minLength: 1, maxLength: 20 }),
      fc.integer({ min: -60, max: 60 }),
      (raw, x) => {
        const sorted = [...raw].sort((a, b) => a - b);
        assertEquals(
          evaluate(searchSorted(sorted, kvIdx), { kvIdx: x }),
          sorted.filter((v) => v <= x).length,
        );
      },
    ),
  );
});

Deno.test("table intervals hold every value over the index range, exactly for searchSorted", () => {
  fc.assert(fc.property(
    fc.array(fc.integer({ min: -50, max: 50 }), { minLength: 1, maxLength: 40 }),
    fc.integer({ min: -10, max: 50 }),
    fc.nat(20),
    (values, lo, width) => {
      const sorted = [...values].sort((a, b) => a - b);
      const hi = lo + width;
      const xs = Array.from({ length: width + 1 }, (_, k) => lo + k);
      for (const e of [lookup(values, kvIdx), searchSorted(sorted, kvIdx)]) {
        const got = xs.map((x) => evaluate(e, { kvIdx: x }) as number);
        const [min, max] = interval(e, { kvIdx: [lo, hi] });
        assert(
          got.every((v) => v >= min && v <= max),
          `${exprKey(e)} on [${lo}, ${hi}]: [${min}, ${max}]`,
        );
        if (e.op === "searchSorted") assertEquals([min, max], [got[0], got[got.length - 1]]);
        else assertEquals([min, max], [Math.min(...got), Math.max(...got)]);
      }
    },
  ));
});

Deno.test("tables are part of the Expr's identity and survive substitution", () => {
  assertNotEquals(exprKey(lookup([1, 2], kvIdx)), exprKey(lookup([1, 3], kvIdx)));
  assertNotEquals(exprKey(lookup([1, 2], kvIdx)), exprKey(searchSorted([1, 2], kvIdx)));
  const e = substituteScore(mul(score, lookup([2, 3], kvIdx)), add(score, 1));
  assertEquals(evaluate(e, { score: 1, kvIdx: 1 }), 6);
});

Deno.test("toWgsl() emits one helper per distinct table, its values lifted when given a table", () => {
  const e = add(lookup([4, 5], kvIdx), add(lookup([4, 5], kvIdx), searchSorted([1, 9], kvIdx)));
  const inline = toWgsl("score_mod", e);
  assertEquals(inline.match(/fn score_mod_lookup_\d/g)?.length, 1);
  assertEquals(inline.match(/fn score_mod_search_\d/g)?.length, 1);
  assert(inline.includes("array<i32, 2>(4i, 5i)"));
  const table = { values: [] as number[], kinds: [] as ("i" | "f")[] };
  const lifted = toWgsl("score_mod", e, table);
  assertEquals(table.values, [4, 5, 1, 9]);
  assert(!lifted.includes("4i, 5i"), "values live in the uniform block");
  const other = { values: [] as number[], kinds: [] as ("i" | "f")[] };
  const e2 = add(lookup([6, 7], kvIdx), add(lookup([6, 7], kvIdx), searchSorted([2, 3], kvIdx)));
  assertEquals(toWgsl("score_mod", e2, other), lifted, "equal-length tables share the source");
});

Deno.test("hand-built table nodes are checked: values, order, operand type", () => {
  assertThrows(
    () => assertExpr({ op: "lookup", values: [], a: kvIdx }, "apply mask", "mask"),
    RangeError,
    "mask.values must be non-empty",
  );
  assertThrows(
    () => assertExpr({ op: "searchSorted", values: [3, 1], a: kvIdx }, "apply mask", "mask"),
    RangeError,
    "mask.values[1] must be at least mask.values[0] (3), current value is 1",
  );
  assertThrows(
    () => assertExpr({ op: "lookup", values: [1.5], a: kvIdx }, "apply mask", "mask"),
    RangeError,
    "mask.values[0] must be an integer in",
  );
  assertThrows(
    () => assertExpr({ op: "lookup", values: [1], a: score }, "apply mask", "mask"),
    TypeError,
    "mask.a must be int, current type is float",
  );
  assertThrows(
    () => lookup(Array(8193).fill(0), kvIdx),
    RangeError,
    "values.length must be at most 8192",
  );
});
