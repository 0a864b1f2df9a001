/**
 * Bad input to every PageTable operation: the error class, a message naming the field and the
 * value, the table exactly as it was, and a valid call right afterwards still right.
 * @module
 */
import { assertEquals, assertThrows } from "@std/assert";
import { tensorDesc } from "../../core/tensor_desc.ts";
import { PageTable, type PageTableOptions } from "../../kv/mod.ts";
import { assertConsistent, snapshot } from "./_sim.ts";

type Ctor = new (...args: never[]) => Error;

/** A table with a resident sequence 0 [1, 2, 3], a freed 1, a swapped-out 2. */
function fixture(): PageTable {
  const table = new PageTable({ numBlocks: 8, blockSize: 2, kvHeads: 2, headDim: 4 });
  table.append(table.create(), [1, 2, 3]);
  table.free(table.fork(0));
  table.swapOut(table.fork(0));
  return table;
}

const k = (shape: number[], dtype: "f32" | "f16" = "f32") => tensorDesc(shape, dtype);
const good = k([1, 2, 1, 4]);

const rows: [string, (t: PageTable) => unknown, Ctor, string][] = [
  [
    "append to an id never created",
    (t) => t.append(9, [1]),
    RangeError,
    "seq must be a live sequence id, current value is 9 (never created)",
  ],
  ["append to a freed sequence", (t) => t.append(1, [1]), RangeError, "current value is 1 (freed)"],
  [
    "append to a swapped-out sequence",
    (t) => t.append(2, [1]),
    RangeError,
    "seq must be a resident sequence id, current value is 2 (swapped out)",
  ],
  [
    "append to a string id",
    (t) => t.append("0" as never, [1]),
    TypeError,
    'seq must be a live sequence id, current value is "0"',
  ],
  [
    "append to a fractional id",
    (t) => t.append(0.5, [1]),
    RangeError,
    "current value is 0.5 (never created)",
  ],
  [
    "append tokens that are not an array",
    (t) => t.append(0, "12" as never),
    TypeError,
    'tokens must be an array of token ids, current value is "12"',
  ],
  [
    "append a fractional token",
    (t) => t.append(0, [4, 2.5]),
    RangeError,
    "tokens[1] must be a non-negative integer, current value is 2.5",
  ],
  [
    "append a negative token",
    (t) => t.append(0, [-1]),
    RangeError,
    "tokens[0] must be a non-negative integer, current value is -1",
  ],
  [
    "append a NaN token",
    (t) => t.append(0, [NaN]),
    RangeError,
    "tokens[0] must be a non-negative integer, current value is NaN",
  ],
  [
    "append a string token",
    (t) => t.append(0, ["7" as never]),
    TypeError,
    'tokens[0] must be a non-negative integer, current value is "7"',
  ],
  [
    "append a token past 2^53",
    (t) => t.append(0, [2 ** 53]),
    RangeError,
    "tokens[0] must be a non-negative integer",
  ],
  [
    "append keys with the wrong head count",
    (t) => t.append(0, [4], { k: k([1, 3, 1, 4]), v: good }),
    RangeError,
    "k.shape[1] must be 2 (kvHeads), current value is 3",
  ],
  [
    "append values with the wrong head dim",
    (t) => t.append(0, [4], { k: good, v: k([1, 2, 1, 8]) }),
    RangeError,
    "v.shape[3] must be 4 (headDim), current value is 8",
  ],
  [
    "append keys for another token count",
    (t) => t.append(0, [4, 5], { k: good, v: good }),
    RangeError,
    "k.shape[2] must be 2 (tokens), current value is 1",
  ],
  [
    "append keys of another dtype",
    (t) => t.append(0, [4], { k: k([1, 2, 1, 4], "f16"), v: good }),
    TypeError,
    'k.dtype must be "f32" (the pool\'s), current value is "f16"',
  ],
  [
    "append keys of rank 3",
    (t) => t.append(0, [4], { k: k([2, 1, 4]), v: good }),
    RangeError,
    "k.shape must be of rank 4",
  ],
  [
    "append keys without values",
    (t) => t.append(0, [4], { k: good }),
    TypeError,
    "v must be a tensor or tensor descriptor, current value is undefined",
  ],
  [
    "append with stored not a Set",
    (t) => t.append(0, [4], { stored: ["h"] as never }),
    TypeError,
    "options.stored must be an object",
  ],
  [
    "append with stored a Map",
    (t) => t.append(0, [4], { stored: new Map() as never }),
    TypeError,
    "options.stored must be a Set of prefix hashes",
  ],
  [
    "append with a misspelt option",
    (t) => t.append(0, [4], { sotred: new Set() } as never),
    TypeError,
    'current value is "sotred" (did you mean "stored"?)',
  ],
  [
    "fork a freed sequence",
    (t) => t.fork(1),
    RangeError,
    "parent must be a live sequence id, current value is 1 (freed)",
  ],
  [
    "fork a swapped-out sequence",
    (t) => t.fork(2),
    RangeError,
    "parent must be a resident sequence id, current value is 2 (swapped out)",
  ],
  [
    "free a freed sequence",
    (t) => t.free(1),
    RangeError,
    "seq must be a live sequence id, current value is 1 (freed)",
  ],
  [
    "swap out a swapped-out sequence",
    (t) => t.swapOut(2),
    RangeError,
    "current value is 2 (swapped out)",
  ],
  [
    "swap in a resident sequence",
    (t) => t.swapIn(0),
    RangeError,
    "seq must be a swapped-out sequence id, current value is 0 (resident)",
  ],
  [
    "evict a negative count",
    (t) => t.evict(-1),
    RangeError,
    "count must be a non-negative integer, current value is -1",
  ],
  [
    "evict a string count",
    (t) => t.evict("1" as never),
    TypeError,
    'count must be a non-negative integer, current value is "1"',
  ],
  [
    "read a swapped-out table",
    (t) => t.blockTable(2),
    RangeError,
    "current value is 2 (swapped out)",
  ],
  [
    "batch tables of a non-array",
    (t) => t.batchTables(0 as never),
    TypeError,
    "seqs must be an array of sequence ids, current value is 0",
  ],
  [
    "batch tables with a freed id",
    (t) => t.batchTables([0, 1]),
    RangeError,
    "seqs[1] must be a live sequence id, current value is 1 (freed)",
  ],
  ["length of a freed sequence", (t) => t.length(1), RangeError, "current value is 1 (freed)"],
];

for (const [name, call, kind, message] of rows) {
  Deno.test(`PageTable refuses to ${name}, unchanged`, () => {
    const table = fixture();
    const before = snapshot(table);
    assertThrows(() => call(table), kind, message);
    assertEquals(snapshot(table), before);
    assertConsistent(table);
    assertEquals([...table.append(0, [4]).slots], [3]);
  });
}

const base = { numBlocks: 4, blockSize: 2, kvHeads: 1, headDim: 4 };
const ctorRows: [string, unknown, Ctor, string][] = [
  [
    "a zero block size",
    { ...base, blockSize: 0 },
    RangeError,
    "blockSize must be an integer in 1..1073741824, current value is 0",
  ],
  [
    "a fractional block count",
    { ...base, numBlocks: 2.5 },
    RangeError,
    "numBlocks must be an integer in 1..1073741824, current value is 2.5",
  ],
  [
    "an unknown dtype",
    { ...base, dtype: "f64" },
    TypeError,
    'dtype must be one of "f32", "f16", current value is "f64"',
  ],
  [
    "a string head count",
    { ...base, kvHeads: "2" },
    TypeError,
    'options.kvHeads must be a number, current value is "2"',
  ],
  [
    "no head dim",
    { ...base, headDim: undefined },
    TypeError,
    "headDim must be an integer in 1..1073741824, current value is undefined",
  ],
  [
    "a zero window",
    { ...base, window: 0 },
    RangeError,
    "options.window must be an integer in 1..1073741824, current value is 0",
  ],
  [
    "sinks without a window",
    { ...base, sinks: 2 },
    RangeError,
    "options.sinks must be 0 when options.window is not set, current value is 2",
  ],
  [
    "a pool past 2^30 slots",
    { ...base, numBlocks: 2 ** 29, blockSize: 4 },
    RangeError,
    "numBlocks * blockSize must be an integer in 1..1073741824",
  ],
  [
    "a misspelt key",
    { ...base, blocksize: 2 },
    TypeError,
    'current value is "blocksize" (did you mean "blockSize"?)',
  ],
  ["a non-object", 7, TypeError, "options must be an object or undefined, current value is 7"],
];

for (const [name, options, kind, message] of ctorRows) {
  Deno.test(`new PageTable() refuses ${name}`, () => {
    assertThrows(() => new PageTable(options as PageTableOptions), kind, message);
  });
}
