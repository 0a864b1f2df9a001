/**
 * A 128-bit chained hash of token blocks (four 32-bit multiply-rotate lanes, cross-mixed and
 * finalized with murmur3's fmix32). Not cryptographic: a hit in the pool is confirmed by
 * comparing tokens; the salt keeps different models and layouts apart in a shared store.
 * @module
 */

const M = [0x239b961b, 0xab0e9789, 0x38b34ae5, 0xa1e38b93];

function fmix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

class Lanes {
  h = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a];
  count = 0;

  word(w: number): void {
    const h = this.h;
    for (let i = 0; i < 4; i++) {
      const x = Math.imul(h[i] ^ w, M[i]);
      h[i] = ((x << (13 + i)) | (x >>> (19 - i))) ^ (h[(i + 3) & 3] >>> 7);
    }
    this.count++;
  }

  text(s: string): void {
    this.word(s.length);
    for (let i = 0; i < s.length; i++) this.word(s.charCodeAt(i));
  }

  digest(): string {
    const h = this.h.map((x, i) => fmix(x ^ this.count ^ Math.imul(i + 1, 0x9e3779b9)));
    const out = [fmix(h[0] ^ h[1]), fmix(h[1] ^ h[2]), fmix(h[2] ^ h[3]), fmix(h[3] ^ h[0])];
    return out.map((x) => x.toString(16).padStart(8, "0")).join("");
  }
}

/** The chain's root: the hash every first block's hash chains from. */
export function rootHash(salt: string): string {
  const lanes = new Lanes();
  lanes.text("attend/kv/root");
  lanes.text(salt);
  return lanes.digest();
}

/** The hash of `tokens[start .. end)` following the block hashed `parent`. */
export function blockHash(
  parent: string,
  tokens: ArrayLike<number>,
  start: number,
  end: number,
): string {
  const lanes = new Lanes();
  lanes.text(parent);
  lanes.word(end - start);
  for (let i = start; i < end; i++) {
    const t = tokens[i];
    lanes.word(t | 0);
    lanes.word(Math.floor(t / 4294967296));
  }
  return lanes.digest();
}
