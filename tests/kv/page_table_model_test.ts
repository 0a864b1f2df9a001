/**
 * Model-based test: random histories of create/append/fork/free/evict/swap against a plain array
 * model of each sequence's tokens, with the consistency check and the simulated storage layer's
 * read-back after every command, and no leak once every sequence has ended.
 * @module
 */
import fc from "fast-check";
import { assert, assertEquals } from "@std/assert";
import { OutOfBlocksError } from "../../core/errors.ts";
import { NO_BLOCK, PageTable, type PageTableOptions, prefixHashes } from "../../kv/mod.ts";
import { assertConsistent, Sim, snapshot } from "./_sim.ts";

interface Model {
  /** Live sequences by id: tokens and whether swapped out. */
  seqs: Map<number, { tokens: number[]; swapped: boolean }>;
  nextId: number;
}

interface Real {
  table: PageTable;
  sim: Sim;
}

type Cmd = fc.Command<Model, Real>;

/** What the histories exercised, so the test can insist that each case happened. */
const seen = {
  commands: 0,
  hits: 0,
  copies: 0,
  loads: 0,
  swapIns: 0,
  swapLoads: 0,
  outOfBlocks: 0,
  released: 0,
};

/** The `pick`th live sequence (resident ones if `resident`), or undefined. */
function pickSeq(model: Model, pick: number, want?: "resident" | "swapped"): number | undefined {
  const ids = [...model.seqs].filter(([, s]) =>
    want === undefined || s.swapped === (want === "swapped")
  ).map(([id]) => id);
  return ids.length ? ids[pick % ids.length] : undefined;
}

/** Runs `fn`; on OutOfBlocksError, checks nothing changed and reports false. */
function orOutOfBlocks(real: Real, fn: () => void): boolean {
  const before = snapshot(real.table);
  try {
    fn();
    return true;
  } catch (error) {
    if (!(error instanceof OutOfBlocksError)) throw error;
    seen.outOfBlocks++;
    assertEquals(snapshot(real.table), before, "a failed call changed the table");
    return false;
  }
}

function agree(model: Model, real: Real): void {
  const { table, sim } = real;
  seen.commands++;
  assertEquals([...table.sequences()], [...model.seqs.keys()]);
  for (const [id, s] of model.seqs) assertEquals([...table.tokens(id)], s.tokens);
  assertConsistent(table);
  sim.verify();
}

class Create implements Cmd {
  check = () => true;
  run(model: Model, real: Real): void {
    assertEquals(real.table.create(), model.nextId);
    model.seqs.set(model.nextId++, { tokens: [], swapped: false });
    agree(model, real);
  }
  toString = () => "create()";
}

class Append implements Cmd {
  constructor(readonly pick: number, readonly tokens: number[], readonly askStore: boolean) {}
  check = (m: Model) => pickSeq(m, this.pick, "resident") !== undefined;
  run(model: Model, real: Real): void {
    const id = pickSeq(model, this.pick, "resident")!;
    const s = model.seqs.get(id)!;
    const all = [...s.tokens, ...this.tokens];
    let stored: Set<string> | undefined;
    if (this.askStore && real.table.prefixCaching) {
      const { blockSize } = real.table.layout;
      const salt = "model";
      const hashes = prefixHashes(all, { blockSize, salt }).slice(s.tokens.length / blockSize);
      stored = new Set(hashes.filter((h) => real.sim.store.has(`prefix/${h}`)));
    }
    orOutOfBlocks(real, () => {
      const plan = real.table.append(id, this.tokens, { stored });
      assert(plan.cached < Math.max(1, this.tokens.length));
      assertEquals(plan.slots.length, this.tokens.length - plan.cached);
      real.sim.append(plan, all);
      if (plan.cached > 0) seen.hits++;
      if (plan.copies.length > 0) seen.copies++;
      if (plan.loads.length > 0) seen.loads++;
      if (real.table.blockTable(id).includes(NO_BLOCK)) seen.released++;
      s.tokens = all;
    });
    agree(model, real);
  }
  toString = () => `append(#${this.pick}, [${this.tokens}]${this.askStore ? ", stored" : ""})`;
}

class Fork implements Cmd {
  constructor(readonly pick: number) {}
  check = (m: Model) => pickSeq(m, this.pick, "resident") !== undefined;
  run(model: Model, real: Real): void {
    const id = pickSeq(model, this.pick, "resident")!;
    assertEquals(real.table.fork(id), model.nextId);
    model.seqs.set(model.nextId++, { tokens: [...model.seqs.get(id)!.tokens], swapped: false });
    agree(model, real);
  }
  toString = () => `fork(#${this.pick})`;
}

class Free implements Cmd {
  constructor(readonly pick: number) {}
  check = (m: Model) => pickSeq(m, this.pick) !== undefined;
  run(model: Model, real: Real): void {
    const id = pickSeq(model, this.pick)!;
    for (const key of real.table.free(id)) {
      assert(key.startsWith("swap/"));
      real.sim.store.delete(key);
    }
    model.seqs.delete(id);
    agree(model, real);
  }
  toString = () => `free(#${this.pick})`;
}

class Evict implements Cmd {
  constructor(readonly count: number) {}
  check = () => true;
  run(model: Model, real: Real): void {
    const cached = real.table.stats().cached;
    assertEquals(real.table.evict(this.count), Math.min(cached, this.count));
    agree(model, real);
  }
  toString = () => `evict(${this.count})`;
}

class SwapOut implements Cmd {
  constructor(readonly pick: number) {}
  check = (m: Model) => pickSeq(m, this.pick, "resident") !== undefined;
  run(model: Model, real: Real): void {
    const id = pickSeq(model, this.pick, "resident")!;
    real.sim.swapOut(real.table.swapOut(id));
    model.seqs.get(id)!.swapped = true;
    agree(model, real);
  }
  toString = () => `swapOut(#${this.pick})`;
}

class SwapIn implements Cmd {
  constructor(readonly pick: number) {}
  check = (m: Model) => pickSeq(m, this.pick, "swapped") !== undefined;
  run(model: Model, real: Real): void {
    const id = pickSeq(model, this.pick, "swapped")!;
    orOutOfBlocks(real, () => {
      const plan = real.table.swapIn(id);
      real.sim.swapIn(plan);
      seen.swapIns++;
      if (plan.loads.length > 0) seen.swapLoads++;
      model.seqs.get(id)!.swapped = false;
    });
    agree(model, real);
  }
  toString = () => `swapIn(#${this.pick})`;
}

// Few distinct token ids and shared prompt heads, so prefix hits and forks happen often.
const PROMPTS = [[1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 9, 9, 9, 9], [5, 5, 5, 5, 5, 5]];
const tokens = fc.oneof(
  fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 4 }),
  fc.tuple(fc.constantFrom(...PROMPTS), fc.integer({ min: 1, max: 9 }))
    .map(([p, n]) => p.slice(0, n)),
);
const pick = fc.nat(7);
const commands = fc.commands([
  fc.constant(new Create()),
  fc.constant(new Create()),
  fc.tuple(pick, tokens, fc.boolean()).map(([p, t, s]) => new Append(p, t, s)),
  fc.tuple(pick, tokens, fc.boolean()).map(([p, t, s]) => new Append(p, t, s)),
  pick.map((p) => new Fork(p)),
  pick.map((p) => new Free(p)),
  fc.integer({ min: 0, max: 4 }).map((n) => new Evict(n)),
  pick.map((p) => new SwapOut(p)),
  pick.map((p) => new SwapIn(p)),
], { maxCommands: 80, size: "large" });

const configs: fc.Arbitrary<PageTableOptions> = fc.record({
  numBlocks: fc.integer({ min: 1, max: 24 }),
  blockSize: fc.integer({ min: 1, max: 5 }),
  prefixCaching: fc.boolean(),
  window: fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined }),
  sinks: fc.integer({ min: 0, max: 4 }),
}).map((c) => ({
  ...c,
  kvHeads: 1,
  headDim: 4,
  salt: "model",
  sinks: c.window === undefined ? 0 : c.sinks,
}));

Deno.test("PageTable agrees with a model of each sequence's tokens over random histories", () => {
  fc.assert(
    fc.property(configs, commands, (config, cmds) => {
      const table = new PageTable(config);
      const real = { table, sim: new Sim(table) };
      const model: Model = { seqs: new Map(), nextId: 0 };
      fc.modelRun(() => ({ model, real }), cmds);
      // Every sequence ends: no block stays used, and evicting the cache frees the whole pool.
      for (const id of table.sequences()) table.free(id);
      assertConsistent(table);
      assertEquals(table.stats().used, 0);
      table.evict();
      assertEquals(table.stats().free, config.numBlocks);
    }),
    { numRuns: 400 },
  );
  for (const [what, count] of Object.entries(seen)) assert(count > 0, `no history had ${what}`);
});
