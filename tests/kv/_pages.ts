/** Shared by the two processes of the Deno KV test. @module */

/** The table both processes build. */
export const TABLE = { numBlocks: 16, blockSize: 4, kvHeads: 2, headDim: 8 } as const;
/** The salt both use. */
export const SALT = "test-model/f32/4";
/** The writer's prompt: three full blocks and one token. */
export const PROMPT: readonly number[] = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9];

/** A block's stand-in payload: 150,000 bytes (three chunks) derived from its key. */
export function pagePayload(key: string): Uint8Array {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return Uint8Array.from({ length: 150_000 }, (_, i) => (h >>> (i % 24)) + i * 7);
}
