/**
 * Argument checks shared by every public entry point: kinds (`TypeError`) and ranges
 * (`RangeError`), with messages shaped `Cannot <context>: <field> must be …, current value is …`,
 * and options objects whose unknown keys are refused with the nearest known key suggested.
 * @module
 */

/**
 * The largest sequence length, window bound and size along any dimension (2^30): positions
 * `qIdx + kvLen - qLen` and window bounds `pos ± left` then stay inside 32-bit integers.
 */
export const MAX_SIZE = 2 ** 30;

/** A value as an error message shows it: strings quoted, arrays listed, objects by kind. */
export function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "function") return "a function";
  if (typeof value === "bigint") return `${value}n`;
  if (Array.isArray(value)) {
    const items = value.slice(0, 8).map((x) => typeof x === "object" && x !== null ? "…" : show(x));
    return `[${items.join(", ")}${value.length > 8 ? ", …" : ""}]`;
  }
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  if (typeof value === "object" && value !== null) {
    const keys = Object.keys(value);
    return keys.length ? `an object with keys ${keys.slice(0, 8).join(", ")}` : "an empty object";
  }
  return String(value);
}

/** Throws a `TypeError` or `RangeError` in the house shape. */
export function fail(
  kind: "type" | "range",
  context: string,
  field: string,
  want: string,
  value: unknown,
): never {
  const message = `Cannot ${context}: ${field} must be ${want}, current value is ${show(value)}`;
  throw kind === "type" ? new TypeError(message) : new RangeError(message);
}

/** Checks a number's kind (`TypeError`) and that it is finite (`RangeError`). */
export function assertFinite(
  value: unknown,
  context: string,
  field: string,
  positive = false,
): asserts value is number {
  const want = positive ? "a positive finite number" : "a finite number";
  if (typeof value !== "number") fail("type", context, field, want, value);
  if (!Number.isFinite(value) || (positive && value <= 0)) {
    fail("range", context, field, want, value);
  }
}

/** Checks that a value is one of a list of strings (`TypeError`), showing them quoted. */
export function assertOneOf<T extends string>(
  value: unknown,
  values: readonly T[],
  context: string,
  field: string,
): asserts value is T {
  if (!values.includes(value as T)) {
    fail("type", context, field, `one of ${values.map((v) => show(v)).join(", ")}`, value);
  }
}

/** Checks an integer's kind (`TypeError`) and range `min..max` (`RangeError`). */
export function assertInteger(
  value: unknown,
  context: string,
  field: string,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
): asserts value is number {
  const want = max === Number.MAX_SAFE_INTEGER && min <= 1
    ? (min === 0 ? "a non-negative integer" : "a positive integer")
    : `an integer in ${min}..${max}`;
  if (typeof value !== "number") fail("type", context, field, want, value);
  if (!Number.isInteger(value) || value < min || value > max) {
    fail("range", context, field, want, value);
  }
}

/** Checks that a value is an array (`TypeError`). */
export function assertArray(
  value: unknown,
  context: string,
  field: string,
  want = "an array",
): asserts value is readonly unknown[] {
  if (!Array.isArray(value)) fail("type", context, field, want, value);
}

/** Checks that a value is a non-null, non-array object (`TypeError`). */
export function assertObject(
  value: unknown,
  context: string,
  field: string,
  want = "an object",
): asserts value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail("type", context, field, want, value);
  }
}

/** What a known option may hold: a `typeof` kind, or `"array"`. */
export type OptionKind = "number" | "boolean" | "string" | "object" | "function" | "array";

/** An option kind with its article: "a number", "an object". */
export function kindName(kind: OptionKind): string {
  return `${/^[aeiou]/.test(kind) ? "an" : "a"} ${kind}`;
}

/** Whether a value has an option kind (`"object"` excludes null and arrays). */
export function hasKind(value: unknown, kind: OptionKind): boolean {
  if (kind === "array") return Array.isArray(value);
  return typeof value === kind && value !== null && !(kind === "object" && Array.isArray(value));
}

/**
 * Checks an options object: `undefined` is an empty one; anything else must be a plain object
 * whose keys are all known and whose defined values have the kind the schema names.
 *
 * @param context What the caller cannot do, e.g. "build attention".
 * @param field How the caller names the object, e.g. "options".
 * @param options The value given.
 * @param schema Each known key and its kind.
 * @returns The options, typed.
 * @throws {TypeError} For a non-object, an unknown key (suggesting the nearest known one) or a
 * value of the wrong kind.
 */
export function checkOptions<T extends object>(
  context: string,
  field: string,
  options: T | undefined,
  schema: Readonly<Record<string, OptionKind>>,
): Partial<T> {
  if (options === undefined) return {};
  assertObject(options, context, field, "an object or undefined");
  const known = Object.keys(schema);
  for (const [key, value] of Object.entries(options)) {
    if (!Object.hasOwn(schema, key)) {
      const near = nearest(key, known);
      throw new TypeError(
        `Cannot ${context}: each ${field} key must be one of ${
          known.join(", ")
        }, current value is ${show(key)}${near ? ` (did you mean ${show(near)}?)` : ""}`,
      );
    }
    if (value !== undefined && !hasKind(value, schema[key])) {
      fail("type", context, `${field}.${key}`, kindName(schema[key]), value);
    }
  }
  return options;
}

/** The known key closest to `key` by edit distance (case-insensitive, transpositions count 1). */
function nearest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined, bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const candidate of known) {
    const d = distance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) best = candidate, bestDistance = d;
  }
  return best;
}

/** Optimal-string-alignment distance: insertions, deletions, substitutions, transpositions. */
function distance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) rows[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      rows[i][j] = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        rows[i][j] = Math.min(rows[i][j], rows[i - 2][j - 2] + 1);
      }
    }
  }
  return rows[a.length][b.length];
}
