import { BASE_POINT, OWNER_MASK, placePoints, pointCountFor, tableAfterChange, tableOfSorted, type PointPlacer, type Points, type PointTable, type RingNode } from './points.js';
import { lowerBound } from './search.js';
import { measureBaseShares, orderOf, updateBaseShares, type ChangedPoints } from './shares.js';
import { sortPointsByHash } from './sort-points.js';

/**
 * The ring's points, kept so that a membership change costs one merge of block copies
 * (and work on the points that changed) instead of hashing and sorting every point again
 * (docs/decisions/0005-balanced-incremental-ring.md).
 *
 * Placement is a function of the member set alone (every node computes the same):
 *  1. member X has base_X = pointCountFor(weight, vnodesPerNode) base points; point k sits
 *     at placePoints(X, k);
 *  2. on the ring of every base point, X's base share b_X is the hash space it owns;
 *  3. X uses count_X points (k < count_X): base_X while b_X is within BALANCE_BAND of fair
 *     (fair_X = weight share of the hash space), else round(base_X × edge / b_X) where edge
 *     is the band's nearer edge, clamped to [base_X / 2, 2 × base_X]. An over-loaded member
 *     leaves its last base points idle, an under-loaded one adds points past its base.
 *     Random placement leaves shares about 1/sqrt(points) off fair; this correction brings
 *     the outliers back near the band.
 * Points in use form the lookup table (`active`); idle base points are kept aside (`idle`)
 * because a later recount may need them. Both are sorted by position, ties by the owners'
 * nodeId order (the lower wins a tie in lookups). A point's owner tag is its member's slot,
 * which the member keeps while it stays (so a change renumbers no point), with BASE_POINT
 * set on base points.
 */

export interface Layout {
  readonly active: Points;
  /** The lookup table over `active` (the same arrays, with its bucket index). */
  readonly table: PointTable;
  readonly idle: Points;
  /** The slot of each member, in member order. */
  readonly slots: Uint16Array;
  /** count_X per member, in member order. */
  readonly counts: Uint32Array;
  /** b_X per member, in member order: hash units, exact integers (shares.ts). */
  readonly shares: Float64Array;
}

const SPAN = 2 ** 32;
const NO_OWNER = 0xffff;
/**
 * Slots run below twice the member cap: members that join take the lowest slots no old
 * member held, so a slot is never reused within one change.
 */
export const SLOT_COUNT = OWNER_MASK + 1;

const emptyPoints = (): Points => ({ positions: new Uint32Array(0), owners: new Uint16Array(0) });
export const EMPTY_LAYOUT: Layout = Object.freeze({
  active: emptyPoints(),
  table: tableOfSorted(new Uint32Array(0), new Uint16Array(0)),
  idle: emptyPoints(),
  slots: new Uint16Array(0),
  counts: new Uint32Array(0),
  shares: new Float64Array(0),
});

/** Points being gathered, then sorted: grows by doubling. */
class PointList {
  positions = new Uint32Array(64);
  owners = new Uint16Array(64);
  length = 0;

  add(position: number, owner: number): void {
    if (this.length === this.positions.length) {
      const positions = new Uint32Array(this.length * 2);
      positions.set(this.positions);
      const owners = new Uint16Array(this.length * 2);
      owners.set(this.owners);
      this.positions = positions;
      this.owners = owners;
    }
    this.positions[this.length] = position;
    this.owners[this.length++] = owner;
  }

  /** Sorted by position, ties in the order added (add them in member order). */
  sorted(): Points {
    const positions = this.positions.slice(0, this.length);
    const owners = this.owners.slice(0, this.length);
    sortPointsByHash(positions, owners);
    return { positions, owners };
  }
}

/**
 * Index of the point at `position` with owner tag `owner` in `p` (skipping indexes already
 * in `taken`, for points that collide), marked taken. Throws when the layout lacks it: a
 * bug, never input.
 */
function take(p: Points, table: PointTable | undefined, position: number, owner: number, taken: Set<number>, what: string): number {
  for (let i = lowerBound(p.positions, position, 0, table); i < p.positions.length && p.positions[i] === position; i++) {
    if (p.owners[i] === owner && !taken.has(i)) {
      taken.add(i);
      return i;
    }
  }
  throw new Error(`ring layout: ${what} not found`);
}

/**
 * `src` without the points at `drops` (sorted indexes) and with `add` (sorted) merged in,
 * as new arrays of block copies. Ties at one position order by the owners' ranks.
 */
function edit(src: Points, table: PointTable | undefined, drops: Int32Array, add: Points, rankOfSlot: Uint16Array): Points {
  const n = src.positions.length;
  if (n === 0) return add; // a first build: nothing to merge with
  const added = add.positions.length;
  const total = n - drops.length + added;
  const positions = new Uint32Array(total);
  const owners = new Uint16Array(total);
  const srcPositions = src.positions;
  const srcOwners = src.owners;
  let s = 0;
  let o = 0;
  let d = 0;
  let a = 0;
  while (a < added || d < drops.length) {
    let at = n;
    if (a < added) {
      // Before the first src point past it, by position then rank.
      const position = add.positions[a]!;
      const rank = rankOfSlot[add.owners[a]! & OWNER_MASK]!;
      at = lowerBound(srcPositions, position, s, table);
      while (at < n && srcPositions[at] === position && rankOfSlot[srcOwners[at]! & OWNER_MASK]! < rank) at++;
    }
    const nextDrop = d < drops.length ? drops[d]! : n;
    const to = a < added && at <= nextDrop ? at : nextDrop;
    if (to > s) {
      positions.set(srcPositions.subarray(s, to), o);
      owners.set(srcOwners.subarray(s, to), o);
      o += to - s;
      s = to;
    }
    if (a < added && at <= nextDrop) {
      positions[o] = add.positions[a]!;
      owners[o++] = add.owners[a++]!;
    } else {
      s++; // dropped
      d++;
    }
  }
  if (n > s) {
    positions.set(srcPositions.subarray(s, n), o);
    owners.set(srcOwners.subarray(s, n), o);
  }
  return { positions, owners };
}

/**
 * How far a base share may stray from fair before its count is corrected (relative). Inside
 * the band a member keeps its base points, so the small share changes every membership
 * change brings move no keys; past it, the count brings the share back to the band's edge.
 */
export const BALANCE_BAND = 0.025;

/** count_X for every member (step 3 above). */
function correctedCounts(nodes: readonly RingNode[], vnodesPerNode: number, shares: Float64Array): Uint32Array {
  let totalWeight = 0;
  for (const node of nodes) totalWeight += node.weight;
  const counts = new Uint32Array(nodes.length);
  for (let x = 0; x < nodes.length; x++) {
    const node = nodes[x]!;
    const base = pointCountFor(node.weight, vnodesPerNode);
    const fair = (SPAN * node.weight) / totalWeight;
    const share = shares[x]!;
    let wanted = base;
    if (share <= 0) wanted = 2 * base;
    else if (share > fair * (1 + BALANCE_BAND)) wanted = Math.round((base * fair * (1 + BALANCE_BAND)) / share);
    else if (share < fair * (1 - BALANCE_BAND)) wanted = Math.round((base * fair * (1 - BALANCE_BAND)) / share);
    counts[x] = Math.min(2 * base, Math.max(Math.ceil(base / 2), wanted));
  }
  return counts;
}

/**
 * The layout of `nodes` (sorted by nodeId), derived from `from`, the layout of `previous`
 * (sorted too; same vnodesPerNode and placer): members that stay keep their slots and
 * points, those that left (or changed weight) lose theirs, new ones hash theirs; base shares
 * are updated from the points that changed, every count_X recomputed, and the points in use
 * rewritten in one merge of block copies. From EMPTY_LAYOUT it builds a ring from scratch;
 * either way the lookups are the same.
 */
export function relayout(previous: readonly RingNode[], from: Layout, nodes: readonly RingNode[], vnodesPerNode: number, place: PointPlacer = placePoints): Layout {
  // Old and new members in one nodeId order: ranks (for ties) by slot; who keeps which slot.
  const rankOfSlot = new Uint16Array(SLOT_COUNT);
  const memberOfSlot = new Uint16Array(SLOT_COUNT).fill(NO_OWNER);
  const slotTaken = new Uint8Array(SLOT_COUNT);
  const slots = new Uint16Array(nodes.length).fill(NO_OWNER);
  const newRank = new Uint16Array(nodes.length);
  const gone: number[] = [];
  for (let i = 0, j = 0, rank = 0; i < previous.length || j < nodes.length; rank++) {
    const a = previous[i];
    const b = nodes[j];
    const same = a !== undefined && b !== undefined && a.nodeId === b.nodeId;
    if (a !== undefined && (same || b === undefined || a.nodeId < b.nodeId)) {
      const slot = from.slots[i]!;
      slotTaken[slot] = 1;
      rankOfSlot[slot] = rank;
      if (same && a.weight === b.weight) {
        slots[j] = slot;
        memberOfSlot[slot] = j;
      } else gone.push(i);
      i++;
    }
    if (b !== undefined && (same || a === undefined || b.nodeId < a.nodeId)) newRank[j++] = rank;
  }
  // New members take the lowest slots no old member held.
  const fresh: number[] = [];
  for (let x = 0, next = 0; x < nodes.length; x++) {
    if (slots[x] !== NO_OWNER) continue;
    while (slotTaken[next] === 1) next++;
    slots[x] = next;
    slotTaken[next] = 1;
    memberOfSlot[next] = x;
    rankOfSlot[next] = newRank[x]!;
    fresh.push(x);
  }
  let scratch = new Uint32Array(64);
  const hash = (nodeId: string, first: number, count: number): Uint32Array => {
    if (scratch.length < count) scratch = new Uint32Array(count);
    place(nodeId, count, scratch, 0, first);
    return scratch;
  };

  // 1. Members gone (or reweighted): all their points leave; their base points leave the base ring.
  const dropActive: number[] = [];
  const dropIdle: number[] = [];
  const takenActive = new Set<number>();
  const takenIdle = new Set<number>();
  const changed: ChangedPoints = { orders: [], owners: [] };
  // With no member kept (a first build) the shares are measured instead: no changes to gather.
  const incremental = fresh.length < nodes.length;
  for (const i of gone) {
    const slot = from.slots[i]!;
    const base = pointCountFor(previous[i]!.weight, vnodesPerNode);
    const count = from.counts[i]!;
    const positions = hash(previous[i]!.nodeId, 0, Math.max(base, count));
    for (let k = 0; k < Math.max(base, count); k++) {
      const tag = k < base ? slot | BASE_POINT : slot;
      if (k < count) dropActive.push(take(from.active, from.table, positions[k]!, tag, takenActive, `point ${k} of ${previous[i]!.nodeId}`));
      else dropIdle.push(take(from.idle, undefined, positions[k]!, tag, takenIdle, `idle point ${k} of ${previous[i]!.nodeId}`));
      if (k < base && incremental) {
        changed.orders.push(orderOf(positions[k]!, rankOfSlot[slot]!));
        changed.owners.push(-1);
      }
    }
  }
  // New members: their base points enter the base ring.
  const newBase = new Map<number, Uint32Array>();
  for (const x of fresh) {
    const base = pointCountFor(nodes[x]!.weight, vnodesPerNode);
    const positions = hash(nodes[x]!.nodeId, 0, base).slice(0, base);
    newBase.set(x, positions);
    if (!incremental) continue;
    for (const position of positions) {
      changed.orders.push(orderOf(position, rankOfSlot[slots[x]!]!));
      changed.owners.push(x);
    }
  }

  // 2. Base shares: the kept members' old ones, updated for the points that changed.
  let shares: Float64Array = new Float64Array(nodes.length);
  for (let i = 0; i < previous.length; i++) {
    const x = memberOfSlot[from.slots[i]!]!;
    if (x !== NO_OWNER && slots[x] === from.slots[i]) shares[x] = from.shares[i]!;
  }
  if (!incremental || !updateBaseShares(shares, { active: from.active, table: from.table, idle: from.idle, rankOfSlot, memberOfSlot }, changed)) {
    // Nothing survived (a first build): measure the new members' base points.
    const all = new PointList();
    for (const [x, positions] of newBase) for (const position of positions) all.add(position, slots[x]! | BASE_POINT);
    shares = measureBaseShares(all.sorted(), memberOfSlot, nodes.length);
  }

  // 3. Recount, and gather the points entering or leaving use.
  const counts = correctedCounts(nodes, vnodesPerNode, shares);
  const toActive = new PointList();
  const toIdle = new PointList();
  const oldCounts = new Uint32Array(nodes.length);
  for (let i = 0; i < previous.length; i++) {
    const x = memberOfSlot[from.slots[i]!]!;
    if (x !== NO_OWNER && slots[x] === from.slots[i]) oldCounts[x] = from.counts[i]!;
  }
  for (let x = 0; x < nodes.length; x++) {
    const now = counts[x]!;
    const slot = slots[x]!;
    const base = pointCountFor(nodes[x]!.weight, vnodesPerNode);
    const joined = newBase.get(x);
    if (joined !== undefined) {
      for (let k = 0; k < base; k++) (k < now ? toActive : toIdle).add(joined[k]!, slot | BASE_POINT);
      if (now > base) {
        const extra = hash(nodes[x]!.nodeId, base, now - base);
        for (let k = 0; k < now - base; k++) toActive.add(extra[k]!, slot);
      }
      continue;
    }
    const was = oldCounts[x]!;
    if (was === now) continue;
    const low = Math.min(was, now);
    const positions = hash(nodes[x]!.nodeId, low, Math.max(was, now) - low);
    for (let k = low; k < Math.max(was, now); k++) {
      const position = positions[k - low]!;
      const tag = k < base ? slot | BASE_POINT : slot;
      if (now > was) {
        // Entering use: a base point leaves idle, or a point past the base is added.
        if (k < base) dropIdle.push(take(from.idle, undefined, position, tag, takenIdle, `idle point ${k} of ${nodes[x]!.nodeId}`));
        toActive.add(position, tag);
      } else {
        dropActive.push(take(from.active, from.table, position, tag, takenActive, `point ${k} of ${nodes[x]!.nodeId}`));
        if (k < base) toIdle.add(position, tag);
      }
    }
  }

  // 4. One merge per list.
  const dropsActive = Int32Array.from(dropActive).sort();
  const entering = toActive.sorted();
  const active = edit(from.active, from.table, dropsActive, entering, rankOfSlot);
  const idle = edit(from.idle, undefined, Int32Array.from(dropIdle).sort(), toIdle.sorted(), rankOfSlot);
  const removed = new Uint32Array(dropsActive.length);
  for (let d = 0; d < dropsActive.length; d++) removed[d] = from.active.positions[dropsActive[d]!]!;
  const table = from.active.positions.length === 0 ? tableOfSorted(active.positions, active.owners) : tableAfterChange(from.table, active.positions, active.owners, removed, entering.positions);
  return { active, table, idle, slots, counts, shares };
}
