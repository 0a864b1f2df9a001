/** Checks shared by the KV cache's entry points. @module */
import { fail } from "../core/_check.ts";

/** Checks token ids: an array or typed array of non-negative safe integers. */
export function assertTokens(
  tokens: unknown,
  context: string,
): asserts tokens is ArrayLike<number> {
  const isArray = Array.isArray(tokens) ||
    (ArrayBuffer.isView(tokens) && !(tokens instanceof DataView) &&
      !(tokens instanceof BigInt64Array) && !(tokens instanceof BigUint64Array));
  if (!isArray) fail("type", context, "tokens", "an array of token ids", tokens);
  const list = tokens as ArrayLike<unknown>;
  for (let i = 0; i < list.length; i++) {
    const t = list[i];
    if (typeof t !== "number") fail("type", context, `tokens[${i}]`, "a non-negative integer", t);
    if (!Number.isSafeInteger(t) || t < 0) {
      fail("range", context, `tokens[${i}]`, "a non-negative integer", t);
    }
  }
}

/** The longest page-store key (Deno KV keys may be 2 KiB in all, prefix included). */
export const MAX_KEY_LENGTH = 1024;

/** Checks a page-store key: a non-empty string of at most 1024 characters. */
export function assertPageKey(key: unknown, context: string): asserts key is string {
  const want = `a non-empty string of at most ${MAX_KEY_LENGTH} characters`;
  if (typeof key !== "string") fail("type", context, "key", want, key);
  if (key.length === 0 || key.length > MAX_KEY_LENGTH) fail("range", context, "key", want, key);
}

/** Checks a page payload. */
export function assertBytes(bytes: unknown, context: string): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) fail("type", context, "bytes", "a Uint8Array", bytes);
}
