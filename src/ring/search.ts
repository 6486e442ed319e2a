import type { PointTable } from './points.js';

/**
 * The first index at or after `from` whose position is at least `position` (the length when
 * none). With the lookup table of these positions, its bucket index narrows the search to
 * one bucket.
 */
export function lowerBound(positions: Uint32Array, position: number, from: number, table?: PointTable): number {
  let low = from;
  let high = positions.length;
  if (table !== undefined && table.bucketBits > 0) {
    const bucket = position >>> (32 - table.bucketBits);
    low = Math.max(from, table.bucketStarts[bucket]!);
    high = Math.max(low, table.bucketStarts[bucket + 1]!);
  }
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (positions[mid]! < position) low = mid + 1;
    else high = mid;
  }
  return low;
}
