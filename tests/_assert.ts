/**
 * A small stand-in for `@std/assert` with the same names and signatures, mapped in deno.json
 * (JSR is unreachable here; switching to `jsr:@std/assert` is a one-line import-map change).
 * @module
 */

/** Raised by failed assertions. */
export class AssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

/** Throws unless `expr` is truthy. */
export function assert(expr: unknown, msg = "Expected value to be truthy"): asserts expr {
  if (!expr) throw new AssertionError(msg);
}

/** Throws with a message. */
export function fail(msg?: string): never {
  throw new AssertionError(msg ? `Failed assertion: ${msg}` : "Failed assertion");
}

function equal(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const ka = Object.keys(a), kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((key) =>
    equal((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key])
  );
}

/** Deep equality. */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  if (!equal(actual, expected)) {
    throw new AssertionError(
      `${msg ? msg + ": " : ""}Values are not equal.\n  actual:   ${
        Deno.inspect(actual)
      }\n  expected: ${Deno.inspect(expected)}`,
    );
  }
}

/** Deep inequality. */
export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void {
  if (equal(actual, expected)) {
    throw new AssertionError(
      `${msg ? msg + ": " : ""}Expected values to differ: ${Deno.inspect(actual)}`,
    );
  }
}

/** Strict identity. */
export function assertStrictEquals<T>(
  actual: unknown,
  expected: T,
  msg?: string,
): asserts actual is T {
  if (!Object.is(actual, expected)) {
    throw new AssertionError(
      `${msg ? msg + ": " : ""}Values are not strictly equal: ${Deno.inspect(actual)} !== ${
        Deno.inspect(expected)
      }`,
    );
  }
}

/** `|actual - expected| <= tolerance`. */
export function assertAlmostEquals(
  actual: number,
  expected: number,
  tolerance = 1e-7,
  msg?: string,
): void {
  if (Object.is(actual, expected)) return;
  if (!(Math.abs(actual - expected) <= tolerance)) {
    throw new AssertionError(
      `${
        msg ? msg + ": " : ""
      }Expected ${actual} to be close to ${expected} (tolerance ${tolerance})`,
    );
  }
}

/** `actual < expected`. */
export function assertLess<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual < expected)) {
    throw new AssertionError(`${msg ? msg + ": " : ""}Expected ${actual} < ${expected}`);
  }
}

/** `actual <= expected`. */
export function assertLessOrEqual<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual <= expected)) {
    throw new AssertionError(`${msg ? msg + ": " : ""}Expected ${actual} <= ${expected}`);
  }
}

/** `actual > expected`. */
export function assertGreater<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual > expected)) {
    throw new AssertionError(`${msg ? msg + ": " : ""}Expected ${actual} > ${expected}`);
  }
}

/** Checks the message of a caught error. */
function checkError(
  e: unknown,
  ErrorClass?: abstract new (...args: never[]) => Error,
  msgIncludes?: string,
): void {
  if (ErrorClass && !(e instanceof ErrorClass)) {
    throw new AssertionError(
      `Expected error to be instance of "${ErrorClass.name}", but was "${(e as Error)?.name}": ${
        (e as Error)?.message
      }`,
    );
  }
  if (msgIncludes !== undefined && !String((e as Error)?.message).includes(msgIncludes)) {
    throw new AssertionError(
      `Expected error message to include "${msgIncludes}", but got "${(e as Error)?.message}"`,
    );
  }
}

/** Expects `fn` to throw; returns the error. */
export function assertThrows(
  fn: () => unknown,
  ErrorClass?: abstract new (...args: never[]) => Error,
  msgIncludes?: string,
): Error {
  try {
    fn();
  } catch (e) {
    checkError(e, ErrorClass, msgIncludes);
    return e as Error;
  }
  throw new AssertionError("Expected function to throw.");
}

/** Expects `fn` to reject; returns the error. */
export async function assertRejects(
  fn: () => PromiseLike<unknown>,
  ErrorClass?: abstract new (...args: never[]) => Error,
  msgIncludes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    checkError(e, ErrorClass, msgIncludes);
    return e as Error;
  }
  throw new AssertionError("Expected function to reject.");
}
