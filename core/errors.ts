/**
 * Error types shared by every layer. Built-in `TypeError` and `RangeError` cover wrong kinds and
 * out-of-range values; these two cover what a backend cannot run and an exhausted KV pool.
 * @module
 */

/**
 * Thrown when a backend cannot run a spec: names the field and the backend.
 *
 * @example
 * ```ts
 * import { UnsupportedSpecError } from "@attend/attend/core";
 * const err = new UnsupportedSpecError("cpu", "normalizer", "linear");
 * if (!err.message.includes("normalizer")) throw new Error("unexpected message");
 * ```
 */
export class UnsupportedSpecError extends Error {
  /** The backend that refused the spec. */
  readonly backend: string;
  /** The spec field the backend cannot handle. */
  readonly field: string;

  /**
   * Builds the message from the backend, field and value.
   *
   * @param backend Name of the backend that refused.
   * @param field The offending spec field.
   * @param value The offending value, shown in the message.
   */
  constructor(backend: string, field: string, value: unknown) {
    super(
      `Cannot run spec on backend "${backend}": ${field} is unsupported, current value is ${
        String(value)
      }`,
    );
    this.name = "UnsupportedSpecError";
    this.backend = backend;
    this.field = field;
  }
}

/**
 * Thrown when a paged KV pool has no free block left.
 *
 * @example
 * ```ts
 * import { OutOfBlocksError } from "@attend/attend/core";
 * const err = new OutOfBlocksError(4, 0);
 * if (err.name !== "OutOfBlocksError") throw new Error("unexpected name");
 * ```
 */
export class OutOfBlocksError extends Error {
  /**
   * Builds the message from the counts.
   *
   * @param needed Blocks the operation needed.
   * @param free Blocks that were free.
   */
  constructor(needed: number, free: number) {
    super(`Cannot allocate KV blocks: needed ${needed}, current free count is ${free}`);
    this.name = "OutOfBlocksError";
  }
}
