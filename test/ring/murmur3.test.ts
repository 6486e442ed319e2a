import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { murmur3, murmur3Bytes } from '../../src/ring/murmur3.js';
import { placePoints } from '../../src/ring/points.js';
import { hashKey } from '../../src/ring/ring.js';

const bytesOf = (s: string): Uint8Array => Buffer.from(s, 'utf8');

const unitIn = (min: number, max: number): fc.Arbitrary<string> =>
  fc.integer({ min, max }).map((unit) => String.fromCharCode(unit));

/** Any UTF-16 code units: ASCII runs (the 4-unit fast path) mixed with 2-, 3- and 4-byte and lone surrogates. */
const anyUtf16 = fc.string({
  unit: fc.oneof(
    { arbitrary: unitIn(0, 0x7f), weight: 4 },
    unitIn(0x80, 0x7ff),
    unitIn(0, 0xffff),
    fc.constantFrom('\ud83d', '\ude80', '🚀'),
  ),
  maxLength: 40,
});

describe('murmur3 (x86, 32-bit)', () => {
  // Published reference vectors of MurmurHash3_x86_32.
  const reference: [string, number, number][] = [
    ['', 0, 0],
    ['', 1, 0x514e28b7],
    ['', 0xffffffff, 0x81f16f39],
    ['\0\0\0\0', 0, 0x2362f9de],
    ['a', 0x9747b28c, 0x7fa09ea6],
    ['aa', 0x9747b28c, 0x5d211726],
    ['aaa', 0x9747b28c, 0x283e0130],
    ['aaaa', 0x9747b28c, 0x5a97808a],
    ['abc', 0x9747b28c, 0xc84a62dd],
    ['Hello, world!', 0x9747b28c, 0x24884cba],
    ['ππππππππ', 0x9747b28c, 0xd58063c1],
    ['The quick brown fox jumps over the lazy dog', 0x9747b28c, 0x2fa826cd],
  ];

  it.each(reference)('murmur3(%j, %d) matches the reference vector', (input, seed, expected) => {
    expect(murmur3(input, seed)).toBe(expected);
    const bytes = bytesOf(input);
    expect(murmur3Bytes(bytes, bytes.length, seed)).toBe(expected);
  });

  it('hashes the UTF-8 bytes of any string, lone surrogates as U+FFFD (like Buffer and TextEncoder)', () => {
    fc.assert(
      fc.property(anyUtf16, fc.integer({ min: 0, max: 0xffffffff }), (s, seed) => {
        const bytes = bytesOf(s);
        expect(murmur3(s, seed)).toBe(murmur3Bytes(bytes, bytes.length, seed));
      }),
      { numRuns: 2000 },
    );
    expect(hashKey('\ud800')).toBe(hashKey('\ufffd'));
    expect(hashKey('a\udc00b')).toBe(hashKey('a\ufffdb'));
  });
});

describe('hashKey', () => {
  // Frozen values: every process and every version must place keys identically.
  // Cross-checked against an independent implementation over the UTF-8 bytes.
  const known: [string, number][] = [
    ['user:42', 0xc7a6a375],
    ['tenant-7/login', 0xcb8d8168],
    ['__proto__', 0x41b6a312],
    ['Zürich', 0x29695951],
    ['🚀', 0x7f675865],
    ['\ud800', 0xb69ca6c1],
    ['', 0],
  ];

  it.each(known)('hashKey(%j) is frozen', (key, expected) => {
    expect(hashKey(key)).toBe(expected);
  });

  it('hashes 1 MB keys deterministically', () => {
    const huge = 'x'.repeat(1 << 20);
    expect(hashKey(huge)).toBe(0x60161291);
    const mixed = 'ab'.repeat(1 << 19);
    expect(hashKey(mixed)).toBe(0x52d643d5);
  });
});

describe('point placement', () => {
  it('places point v of node X at murmur3 of `${X}#${v}`', () => {
    const out = new Uint32Array(3);
    placePoints('node-1', 3, out, 0);
    expect([...out]).toEqual([0x4122ee3e, 0xdbb0d677, 0x4fe587ba]);
    fc.assert(
      fc.property(anyUtf16.filter((s) => s.length > 0), fc.integer({ min: 1, max: 1200 }), (nodeId, count) => {
        const points = new Uint32Array(count + 2);
        placePoints(nodeId, count, points, 2);
        for (const vnode of [0, count >> 1, count - 1]) {
          expect(points[2 + vnode]).toBe(murmur3(`${nodeId}#${vnode}`, 0));
        }
      }),
      { numRuns: 300 },
    );
  });
});
