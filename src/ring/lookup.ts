import type { PointTable } from './points.js';

/**
 * Index of the first point at or clockwise after `hash`, wrapping past the top to 0.
 * `points` must be non-empty and ascending.
 */
export function pointIndexAt(points: Uint32Array, hash: number): number {
  let low = 0;
  let high = points.length;
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
 * nodes). The linear duplicate check is the fastest for replica counts of a few.
 */
export function distinctOwnersInto(
  table: PointTable,
  nodeIds: readonly string[],
  start: number,
  count: number,
  out: string[],
): number {
  const owners = table.pointOwners;
  const total = owners.length;
  const wanted = Math.min(count, nodeIds.length);
  let written = 0;
  let index = start;
  for (let step = 0; step < total && written < wanted; step++) {
    const nodeId = nodeIds[owners[index] as number] as string;
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
