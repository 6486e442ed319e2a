import { murmur3Bytes } from './murmur3.js';
import { sortPointsByHash } from './sort-points.js';

/** A validated member: nodeId and weight as the ring uses them. */
export interface RingNode {
  readonly nodeId: string;
  readonly weight: number;
}

/**
 * Writes the ring positions of a node's points first..first+count-1 into `out[offset..]`.
 * Must depend only on the nodeId and the point's number, never on other members.
 */
export type PointPlacer = (nodeId: string, count: number, out: Uint32Array, offset: number, first?: number) => void;

const MAX_DECIMAL_DIGITS = 10;

/** Writes `value` (a non-negative int32) in decimal at `bytes[at..]`; returns the end. */
function writeDecimal(bytes: Uint8Array, at: number, value: number): number {
  let digits = 1;
  for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits++;
  let rest = value;
  for (let i = at + digits - 1; i >= at; i--) {
    bytes[i] = 0x30 + (rest % 10);
    rest = Math.floor(rest / 10);
  }
  return at + digits;
}

/**
 * Point `vnode` of node X sits at murmur3_32(utf8(`${X}#${vnode}`), seed 0). Decimal
 * digits contain no '#', so distinct (X, vnode) pairs hash distinct strings.
 */
export function placePoints(nodeId: string, count: number, out: Uint32Array, offset: number, first = 0): void {
  const prefix = Buffer.from(`${nodeId}#`, 'utf8');
  const bytes = new Uint8Array(prefix.length + MAX_DECIMAL_DIGITS);
  bytes.set(prefix);
  for (let i = 0; i < count; i++) {
    out[offset + i] = murmur3Bytes(bytes, writeDecimal(bytes, prefix.length, first + i), 0);
  }
}

/** Points a node owns: proportional to its weight alone, never to the member count. */
export function pointCountFor(weight: number, vnodesPerNode: number): number {
  return Math.max(1, Math.round(weight * vnodesPerNode));
}

/**
 * A point's owner tag: the owner in the low 13 bits (a member index, or in a Ring a member's
 * slot), and in a Ring's layout a flag for base points in bit 15.
 */
export const OWNER_MASK = 0x1fff;
export const BASE_POINT = 0x8000;

/** Points of a layout (layout.ts), sorted by position: owner tags are slot | BASE_POINT for a base point. */
export interface Points {
  readonly positions: Uint32Array;
  readonly owners: Uint16Array;
}

/**
 * The ring as two parallel arrays: `points` ascending, and `pointOwners[i]` the owner tag
 * (OWNER_MASK: the node) of `points[i]`. `bucketStarts[b]` is the
 * first point whose top `bucketBits` bits are >= b, so a lookup only searches the
 * few points of one bucket instead of the whole ring.
 */
export interface PointTable {
  readonly points: Uint32Array;
  readonly pointOwners: Uint16Array;
  readonly bucketBits: number;
  readonly bucketStarts: Uint32Array;
}

const MAX_BUCKET_BITS = 20;

/** Two to four points per bucket, capped at 2^20 buckets (4 MiB of index). */
function bucketBitsFor(pointCount: number): number {
  if (pointCount < 4) return 0;
  return Math.min(MAX_BUCKET_BITS, Math.floor(Math.log2(pointCount)) - 1);
}

/** The lookup table of points already sorted (positions ascending, ties by member index). */
export function tableOfSorted(points: Uint32Array, pointOwners: Uint16Array): PointTable {
  const bucketBits = bucketBitsFor(points.length);
  return { points, pointOwners, bucketBits, bucketStarts: buildBucketStarts(points, bucketBits) };
}

/**
 * The lookup table of `points` (sorted) made from `previous` by removing the positions
 * `removed` and adding `added` (both ascending): the bucket index is shifted by the counts
 * of removed and added points below each bucket instead of recounted from every point.
 */
export function tableAfterChange(previous: PointTable, points: Uint32Array, pointOwners: Uint16Array, removed: Uint32Array, added: Uint32Array): PointTable {
  const bucketBits = bucketBitsFor(points.length);
  if (bucketBits !== previous.bucketBits || bucketBits === 0) return tableOfSorted(points, pointOwners);
  const bucketCount = 2 ** bucketBits;
  const shift = 32 - bucketBits;
  const starts = new Uint32Array(bucketCount + 1);
  const before = previous.bucketStarts;
  let r = 0;
  let a = 0;
  let delta = 0;
  let bucket = 0;
  while (bucket <= bucketCount) {
    // Until the next bucket past a removed or added point, every start moves by delta.
    const nextRemoved = r < removed.length ? (removed[r]! >>> shift) + 1 : bucketCount + 1;
    const nextAdded = a < added.length ? (added[a]! >>> shift) + 1 : bucketCount + 1;
    const until = Math.min(nextRemoved, nextAdded);
    for (; bucket < until; bucket++) starts[bucket] = before[bucket]! + delta;
    if (until > bucketCount) break;
    if (nextRemoved === until) {
      delta--;
      r++;
    } else {
      delta++;
      a++;
    }
  }
  return { points, pointOwners, bucketBits, bucketStarts: starts };
}

function buildBucketStarts(points: Uint32Array, bucketBits: number): Uint32Array {
  const bucketCount = 2 ** bucketBits;
  const starts = new Uint32Array(bucketCount + 1);
  if (bucketBits === 0) {
    starts[1] = points.length;
    return starts;
  }
  // starts[b] = how many points lie in buckets below b: count per bucket, then sum up.
  const shift = 32 - bucketBits;
  for (let i = 0; i < points.length; i++) {
    const next = ((points[i] as number) >>> shift) + 1;
    starts[next] = (starts[next] as number) + 1;
  }
  for (let bucket = 1; bucket <= bucketCount; bucket++) starts[bucket] = (starts[bucket] as number) + (starts[bucket - 1] as number);
  return starts;
}

/**
 * A table of plain random points, `weight × vnodesPerNode` per node, without the balancing
 * of layout.ts: the Ring does not use it; the lookup tests build tables with their own
 * placers through it, and bench/ring.ts measures the design before 0005 with it. `nodes`
 * must be sorted by nodeId: points are laid out in node order and sorted stably, so equal
 * hashes order by nodeId (the lower index wins the tie).
 */
export function buildPointTable(
  nodes: readonly RingNode[],
  vnodesPerNode: number,
  place: PointPlacer = placePoints,
): PointTable {
  let total = 0;
  for (const node of nodes) total += pointCountFor(node.weight, vnodesPerNode);
  const points = new Uint32Array(total);
  const pointOwners = new Uint16Array(total);
  let offset = 0;
  for (let owner = 0; owner < nodes.length; owner++) {
    const node = nodes[owner] as RingNode;
    const count = pointCountFor(node.weight, vnodesPerNode);
    place(node.nodeId, count, points, offset);
    pointOwners.fill(owner, offset, offset + count);
    offset += count;
  }
  sortPointsByHash(points, pointOwners);
  return tableOfSorted(points, pointOwners);
}
