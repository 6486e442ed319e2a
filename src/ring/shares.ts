import { BASE_POINT, OWNER_MASK, type Points, type PointTable } from './points.js';
import { lowerBound } from './search.js';

/**
 * Base shares: each member's share of the hash space on the ring of its base points (the
 * active ones and the idle ones), in hash units — exact integers in a double. A change
 * updates them from the points that changed (`updateBaseShares`); a ring built from
 * nothing measures them in one pass (`measureBaseShares`). Both give the same integers.
 */

const SPAN = 2 ** 32;
/** A point's place in ring order: position, then rank (ranks < 2^13), exact in a double. */
const RANK_SPAN = 8192;
const ORDER_SPAN = SPAN * RANK_SPAN;

/** Shares on the ring of `points` (base points, sorted by position, ties in nodeId order; owners are slots). */
export function measureBaseShares(points: Points, memberOfSlot: Uint16Array, memberCount: number): Float64Array {
  const shares = new Float64Array(memberCount);
  const { positions, owners } = points;
  const n = positions.length;
  if (n === 0) return shares;
  let previous = positions[n - 1]! - SPAN;
  for (let i = 0; i < n; i++) {
    shares[memberOfSlot[owners[i]! & OWNER_MASK]!]! += positions[i]! - previous;
    previous = positions[i]!;
  }
  return shares;
}

/** The old ring's base points; those of slots without a member (members that left) no longer count. */
export interface OldBaseRing {
  readonly active: Points;
  /** The lookup table over `active`, whose index narrows searches. */
  readonly table: PointTable;
  readonly idle: Points;
  /** Slot → rank in the joint nodeId order of old and new members. */
  readonly rankOfSlot: Uint16Array;
  /** Slot → new member index, or NO_MEMBER. */
  readonly memberOfSlot: Uint16Array;
}

const NO_MEMBER = 0xffff;

/** A base point entering (a new member's) or leaving (a departed member's) the ring. */
export interface ChangedPoints {
  /** Sort keys: position × RANK_SPAN + rank. */
  readonly orders: number[];
  /** New member index for an entering point, -1 for a leaving one. */
  readonly owners: number[];
}

export const orderOf = (position: number, rank: number): number => position * RANK_SPAN + rank;

/** A surviving base point: its order key and its new member index. */
interface Survivor {
  order: number;
  owner: number;
  /** List (0 active, 1 idle) × SPAN + index: names the point. */
  id: number;
}

function survives(ring: OldBaseRing, list: Points, i: number): boolean {
  const owner = list.owners[i]!;
  return (owner & BASE_POINT) !== 0 && ring.memberOfSlot[owner & OWNER_MASK] !== NO_MEMBER;
}

const rankAt = (ring: OldBaseRing, list: Points, i: number): number => ring.rankOfSlot[list.owners[i]! & OWNER_MASK]!;

/** First index of `list` whose order is past `order`. */
function firstAfter(ring: OldBaseRing, list: Points, table: PointTable | undefined, order: number): number {
  const position = Math.floor(order / RANK_SPAN);
  const rank = order - position * RANK_SPAN;
  let i = lowerBound(list.positions, position, 0, table);
  while (i < list.positions.length && list.positions[i] === position && rankAt(ring, list, i) <= rank) i++;
  return i;
}

/**
 * The surviving base point of `list` nearest `order` going clockwise (step 1) or
 * counter-clockwise (step -1), as a distance in order units (> 0, wrapping); -1 if none.
 */
function nearest(ring: OldBaseRing, list: Points, listId: number, order: number, step: 1 | -1, out: Survivor): number {
  const n = list.positions.length;
  if (n === 0) return -1;
  let i = firstAfter(ring, list, listId === 0 ? ring.table : undefined, order);
  if (step === -1) i--;
  for (let seen = 0; seen < n; seen++, i += step) {
    if (i === n) i = 0;
    else if (i < 0) i = n - 1;
    if (!survives(ring, list, i)) continue;
    const at = orderOf(list.positions[i]!, rankAt(ring, list, i));
    const distance = step === 1 ? (at > order ? at - order : at - order + ORDER_SPAN) : at < order ? order - at : order - at + ORDER_SPAN;
    out.order = at;
    out.owner = ring.memberOfSlot[list.owners[i]! & OWNER_MASK]!;
    out.id = listId * SPAN + i;
    return distance;
  }
  return -1;
}

/** Writes into `out` the surviving base point nearest `order` in direction `step`; false when none survives. */
function neighbour(ring: OldBaseRing, order: number, step: 1 | -1, out: Survivor, scratch: Survivor): boolean {
  const a = nearest(ring, ring.active, 0, order, step, out);
  const b = nearest(ring, ring.idle, 1, order, step, scratch);
  if (b >= 0 && (a < 0 || b < a)) {
    out.order = scratch.order;
    out.owner = scratch.owner;
    out.id = scratch.id;
  }
  return a >= 0 || b >= 0;
}

/**
 * `shares` (new member order, the kept members' old shares) updated for the base points
 * leaving and entering. Every run of changed points lies between two surviving points q and
 * s: s's arc now starts at the last entering point of the run (or q), and each entering
 * point owns the arc from the point before it. Returns false when no base point survives
 * (the caller measures the ring instead).
 */
export function updateBaseShares(shares: Float64Array, ring: OldBaseRing, changed: ChangedPoints): boolean {
  const runs = new Map<number, { q: Survivor; s: Survivor; members: number[] }>();
  const scratch: Survivor = { order: 0, owner: 0, id: 0 };
  for (let c = 0; c < changed.orders.length; c++) {
    const s: Survivor = { order: 0, owner: 0, id: 0 };
    if (!neighbour(ring, changed.orders[c]!, 1, s, scratch)) return false;
    const run = runs.get(s.id);
    if (run !== undefined) {
      run.members.push(c);
      continue;
    }
    const q: Survivor = { order: 0, owner: 0, id: 0 };
    neighbour(ring, changed.orders[c]!, -1, q, scratch);
    runs.set(s.id, { q, s, members: [c] });
  }
  for (const { q, s, members } of runs.values()) {
    // Orders unwrapped to lie after q; s wraps a full turn when it is q itself.
    const unwrap = (order: number): number => (order > q.order ? order : order + ORDER_SPAN);
    const positionOf = (order: number): number => Math.floor(order / RANK_SPAN);
    members.sort((x, y) => unwrap(changed.orders[x]!) - unwrap(changed.orders[y]!));
    const qPosition = positionOf(q.order);
    let oldBefore = qPosition;
    let newBefore = qPosition;
    for (const c of members) {
      const position = positionOf(unwrap(changed.orders[c]!));
      const owner = changed.owners[c]!;
      if (owner < 0) {
        oldBefore = position;
        continue;
      }
      shares[owner]! += position - newBefore;
      newBefore = position;
    }
    // s's arc was (oldBefore, s] and is now (newBefore, s].
    shares[s.owner]! += oldBefore - newBefore;
  }
  return true;
}
