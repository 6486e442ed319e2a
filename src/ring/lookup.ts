import { OWNER_MASK, type PointTable } from './points.js';

/**
 * Index of the first point at or clockwise after `hashBits` (a 32-bit hash, signed or
 * unsigned), wrapping past the top to 0. The table must have at least one point.
 * Callers pass the signed form: V8 boxes a uint32 of 2^31 or more into a heap number
 * when it crosses a call that is not inlined, so it is made unsigned only in here.
 */
export function pointIndexAt(table: PointTable, hashBits: number): number {
  const hash = hashBits >>> 0;
  const points = table.points;
  // The answer lies in the hash's bucket, or is the first point of a later one.
  let low: number;
  let high: number;
  if (table.bucketBits === 0) {
    low = 0;
    high = points.length;
  } else {
    const bucket = hash >>> (32 - table.bucketBits);
    low = table.bucketStarts[bucket] as number;
    high = table.bucketStarts[bucket + 1] as number;
  }
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((points[mid] as number) < hash) low = mid + 1;
    else high = mid;
  }
  return low === points.length ? 0 : low;
}

/**
 * Walks clockwise from point `start` and writes the first `count` distinct owners
 * into `out[0..]`; returns how many were written (fewer only when the ring has fewer
 * than `nodeCount` nodes). `nodeIds` maps a point's owner to its nodeId. The linear
 * duplicate check is the fastest for replica counts of a few.
 */
export function distinctOwnersInto(
  table: PointTable,
  nodeIds: readonly string[],
  start: number,
  count: number,
  out: string[],
  nodeCount = nodeIds.length,
): number {
  const owners = table.pointOwners;
  const total = owners.length;
  const wanted = Math.min(count, nodeCount);
  let written = 0;
  let index = start;
  for (let step = 0; step < total && written < wanted; step++) {
    const nodeId = nodeIds[(owners[index] as number) & OWNER_MASK] as string;
    let seen = false;
    for (let j = 0; j < written; j++) {
      if (out[j] === nodeId) {
        seen = true;
        break;
      }
    }
    if (!seen) out[written++] = nodeId;
    index = index + 1 === total ? 0 : index + 1;
  }
  return written;
}
