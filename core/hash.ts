/** FNV-1a's 32-bit offset basis: the hash of the empty text. */
const FNV_OFFSET = 0x811c9dc5;

/**
 * FNV-1a, 32 bits, over UTF-16 code units, continuing from `seed` (a hash of a prefix: `fnv1a('a=')`
 * seeds the hashes of the texts after it). The same text hashes the same in every run, process and
 * version, unlike a seeded hash: buckets of it (hashed features, embeddings) keep their meaning in
 * saved models. Its low bits depend only on the low bits of the code units: mod 2^k, keys that differ
 * only above bit k of a character (`Apple`, `apple`) always share a bucket; a width that is no power of
 * two uses every bit. Measured on realistic keys (BENCHMARKS.md, FNV-1a buckets): no skew worth a final
 * mix, which would move every saved bucket without a word.
 */
export function fnv1a(text: string, seed: number = FNV_OFFSET): number {
  let hash = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
