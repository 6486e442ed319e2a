import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { pointIndexAt } from '../../src/ring/lookup.js';
import { buildPointTable, type PointPlacer } from '../../src/ring/points.js';

/** The definition: the first point >= hash, else wrap to the first point. */
function firstPointAtOrAfter(points: Uint32Array, hash: number): number {
  const index = points.findIndex((point) => point >= hash);
  return index === -1 ? 0 : index;
}

/** Places exactly the given positions, one node. */
const placeAt =
  (positions: number[]): PointPlacer =>
  (_nodeId, count, out, offset) => {
    for (let i = 0; i < count; i++) out[offset + i] = positions[i] as number;
  };

describe('pointIndexAt (bucket index + binary search)', () => {
  it('finds the first point at or after any hash, for rings of any size and clustering', () => {
    const position = fc.oneof(
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 0, max: 40 }),
      fc.integer({ min: 0xffffffd0, max: 0xffffffff }),
      fc.integer({ min: 0x7ffffff0, max: 0x80000010 }),
    );
    fc.assert(
      fc.property(fc.array(position, { minLength: 1, maxLength: 300 }), fc.array(position, { maxLength: 30 }), (positions, probes) => {
        const table = buildPointTable([{ nodeId: 'n', weight: 1 }], positions.length, placeAt(positions));
        expect([...table.points]).toEqual([...positions].sort((a, b) => a - b));
        const hashes = [0, 0xffffffff, ...probes, ...positions, ...positions.map((p) => (p + 1) >>> 0), ...positions.map((p) => (p - 1) >>> 0)];
        for (const hash of hashes) {
          expect(pointIndexAt(table, hash)).toBe(firstPointAtOrAfter(table.points, hash));
        }
      }),
      { numRuns: 400 },
    );
  });

  it('uses two to four points per bucket, capped at 2^20 buckets', () => {
    const table = (count: number) => buildPointTable([{ nodeId: 'n', weight: 1 }], count);
    expect(table(1).bucketBits).toBe(0);
    expect(table(3).bucketBits).toBe(0);
    expect(table(4).bucketBits).toBe(1);
    expect(table(245_760).bucketBits).toBe(16);
    expect(table(245_760).bucketStarts).toHaveLength(2 ** 16 + 1);
  });
});
