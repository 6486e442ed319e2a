/**
 * MurmurHash3 x86 32-bit over the UTF-8 bytes of a JS string, encoded on the fly
 * so hashing allocates nothing. Lone surrogates encode as U+FFFD (EF BF BD), exactly
 * like `Buffer.from(s, 'utf8')` and `TextEncoder`, so the value equals murmur3 of
 * those bytes in any language and any process.
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const REPLACEMENT_CHAR_UTF8 = 0xbdbfef; // EF BF BD, first byte lowest

function scrambleBlock(k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, C2);
}

function mixBlock(h: number, k: number): number {
  h ^= scrambleBlock(k);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** Returns the hash as a signed int32. */
function finalMix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Unsigned 32-bit MurmurHash3 of `s` in UTF-8 with the given 32-bit seed. */
export function murmur3(s: string, seed: number): number {
  return murmur3Int32(s, seed) >>> 0;
}

/**
 * The same bits as a signed int32, for the lookup path: V8 boxes a uint32 of 2^31 or
 * more into a heap number when a call returns it, an int32 it does not.
 */
export function murmur3Int32(s: string, seed: number): number {
  let h = seed | 0;
  let block = 0; // pending bytes, little-endian
  let blockBits = 0;
  let byteLength = 0;
  const length = s.length;
  for (let i = 0; i < length; i++) {
    // Fast path: four ASCII units make one whole block.
    if (blockBits === 0 && i + 3 < length) {
      const a = s.charCodeAt(i);
      const b = s.charCodeAt(i + 1);
      const c = s.charCodeAt(i + 2);
      const d = s.charCodeAt(i + 3);
      if ((a | b | c | d) < 0x80) {
        h = mixBlock(h, a | (b << 8) | (c << 16) | (d << 24));
        byteLength += 4;
        i += 3;
        continue;
      }
    }
    const unit = s.charCodeAt(i);
    if (unit < 0x80) {
      block |= unit << blockBits;
      byteLength++;
      blockBits += 8;
      if (blockBits === 32) {
        h = mixBlock(h, block);
        block = 0;
        blockBits = 0;
      }
      continue;
    }
    // Multi-byte sequence, packed first byte lowest so it can be fed bytewise.
    let packed: number;
    let count: number;
    if (unit < 0x800) {
      packed = (0xc0 | (unit >>> 6)) | ((0x80 | (unit & 0x3f)) << 8);
      count = 2;
    } else if (unit >= 0xd800 && unit <= 0xdfff) {
      const next = i + 1 < length ? s.charCodeAt(i + 1) : 0;
      if (unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        const codePoint = 0x10000 + ((unit - 0xd800) << 10) + (next - 0xdc00);
        packed =
          (0xf0 | (codePoint >>> 18)) |
          ((0x80 | ((codePoint >>> 12) & 0x3f)) << 8) |
          ((0x80 | ((codePoint >>> 6) & 0x3f)) << 16) |
          ((0x80 | (codePoint & 0x3f)) << 24);
        count = 4;
        i++;
      } else {
        packed = REPLACEMENT_CHAR_UTF8;
        count = 3;
      }
    } else {
      packed = (0xe0 | (unit >>> 12)) | ((0x80 | ((unit >>> 6) & 0x3f)) << 8) | ((0x80 | (unit & 0x3f)) << 16);
      count = 3;
    }
    byteLength += count;
    for (let b = 0; b < count; b++) {
      block |= ((packed >>> (b * 8)) & 0xff) << blockBits;
      blockBits += 8;
      if (blockBits === 32) {
        h = mixBlock(h, block);
        block = 0;
        blockBits = 0;
      }
    }
  }
  if (blockBits !== 0) h ^= scrambleBlock(block);
  // The reference mixes the length as a 32-bit value.
  h ^= byteLength | 0;
  return finalMix(h);
}

/** Unsigned 32-bit MurmurHash3 of `bytes[0..length)`; equals `murmur3` of the string they encode. */
export function murmur3Bytes(bytes: Uint8Array, length: number, seed: number): number {
  let h = seed | 0;
  const blockEnd = length & ~3;
  for (let i = 0; i < blockEnd; i += 4) {
    const k =
      (bytes[i] as number) |
      ((bytes[i + 1] as number) << 8) |
      ((bytes[i + 2] as number) << 16) |
      ((bytes[i + 3] as number) << 24);
    h = mixBlock(h, k);
  }
  let tail = 0;
  for (let i = length - 1; i >= blockEnd; i--) tail = (tail << 8) | (bytes[i] as number);
  if (length !== blockEnd) h ^= scrambleBlock(tail);
  h ^= length | 0;
  return finalMix(h) >>> 0;
}
