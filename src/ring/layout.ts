import { placePoints, pointCountFor, type PointPlacer, type RingNode } from './points.js';
import { sortPointsByHash } from './sort-points.js';

/**
 * The ring's points, kept so that a membership change costs a few block copies and one
 * linear pass instead of hashing and sorting every point again
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
 * because the base shares of the next change need them. Both are sorted by position, ties
 * by member index (the lower index wins a tie in lookups).
 */

export interface Points {
  readonly positions: Uint32Array;
  readonly owners: Uint16Array;
  /** 1 for a base point (k < base_X), 0 for a point past the base. */
  readonly base: Uint8Array;
}

export interface Layout {
  readonly active: Points;
  readonly idle: Points;
  /** count_X per member, in member order. */
  readonly counts: Uint32Array;
}

const SPAN = 2 ** 32;
const NO_OWNER = 0xffff;

const emptyPoints = (): Points => ({ positions: new Uint32Array(0), owners: new Uint16Array(0), base: new Uint8Array(0) });
export const EMPTY_LAYOUT: Layout = Object.freeze({ active: emptyPoints(), idle: emptyPoints(), counts: new Uint32Array(0) });

/** Points being gathered, then sorted: grows by doubling. */
class PointList {
  positions = new Uint32Array(64);
  owners = new Uint16Array(64);
  base = new Uint8Array(64);
  length = 0;

  add(position: number, owner: number, base: number): void {
    if (this.length === this.positions.length) {
      const grow = <T extends Uint32Array | Uint16Array | Uint8Array>(a: T, make: (n: number) => T): T => {
        const b = make(a.length * 2);
        b.set(a);
        return b;
      };
      this.positions = grow(this.positions, (n) => new Uint32Array(n));
      this.owners = grow(this.owners, (n) => new Uint16Array(n));
      this.base = grow(this.base, (n) => new Uint8Array(n));
    }
    this.positions[this.length] = position;
    this.owners[this.length] = owner;
    this.base[this.length++] = base;
  }

  /** Sorted by position, ties in the order added (add them in member order). */
  sorted(): Points {
    const positions = this.positions.slice(0, this.length);
    // The radix sort carries one Uint16Array along: the owner (under 4,096) and the base flag in bit 15.
    const packed = new Uint16Array(this.length);
    for (let i = 0; i < this.length; i++) packed[i] = this.owners[i]! | (this.base[i]! << 15);
    sortPointsByHash(positions, packed);
    const owners = new Uint16Array(this.length);
    const base = new Uint8Array(this.length);
    for (let i = 0; i < this.length; i++) {
      owners[i] = packed[i]! & 0x7fff;
      base[i] = packed[i]! >>> 15;
    }
    return { positions, owners, base };
  }
}

/**
 * Index of a point at `position` of `owner` with base flag `base`, in `p` (skipping indexes
 * already in `taken`, for points that collide); -1 when none.
 */
function find(p: Points, position: number, owner: number, base: number, taken: Set<number>): number {
  let low = 0;
  let high = p.positions.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (p.positions[mid]! < position) low = mid + 1;
    else high = mid;
  }
  for (let i = low; i < p.positions.length && p.positions[i] === position; i++) {
    if (p.owners[i] === owner && p.base[i] === base && !taken.has(i)) return i;
  }
  return -1;
}

/**
 * `src` without the points at `drop` (indexes, in no particular order) and with `add` (sorted) merged in,
 * as new arrays; runs between edits are block copies. For ties at one position, src's
 * owners rank as srcRank says and add's as addRank says; `renumber` maps src's owners to the
 * result's (add's owners are the result's already).
 */
function edit(src: Points, drop: number[], add: Points, srcRank?: Uint16Array, addRank?: Uint16Array, renumber?: Uint16Array): Points {
  const drops = Int32Array.from(drop).sort();
  const n = src.positions.length;
  const added = add.positions.length;
  const total = n - drops.length + added;
  const positions = new Uint32Array(total);
  const owners = new Uint16Array(total);
  const base = new Uint8Array(total);
  // Owners are copied as they are and renumbered in one pass at the end: src's through renumber, and add's (stored as n + owner, above every src owner) back to themselves.
  const offset = renumber === undefined ? 0 : renumber.length;
  let s = 0;
  let o = 0;
  let d = 0;
  let a = 0;
  while (a < added || d < drops.length) {
    let at = n;
    if (a < added) {
      // Before the first src point past it, by position then rank.
      const position = add.positions[a]!;
      const rank = addRank === undefined ? add.owners[a]! : addRank[add.owners[a]!]!;
      let low = s;
      let high = n;
      while (low < high) {
        const mid = (low + high) >>> 1;
        const p = src.positions[mid]!;
        if (p < position || (p === position && (srcRank === undefined ? src.owners[mid]! : srcRank[src.owners[mid]!]!) < rank)) low = mid + 1;
        else high = mid;
      }
      at = low;
    }
    const nextDrop = d < drops.length ? drops[d]! : n;
    const to = a < added && at <= nextDrop ? at : nextDrop;
    if (to > s) {
      positions.set(src.positions.subarray(s, to), o);
      owners.set(src.owners.subarray(s, to), o);
      base.set(src.base.subarray(s, to), o);
      o += to - s;
      s = to;
    }
    if (a < added && at <= nextDrop) {
      positions[o] = add.positions[a]!;
      owners[o] = offset + add.owners[a]!;
      base[o++] = add.base[a++]!;
    } else {
      s++; // dropped
      d++;
    }
  }
  if (n > s) {
    positions.set(src.positions.subarray(s, n), o);
    owners.set(src.owners.subarray(s, n), o);
    base.set(src.base.subarray(s, n), o);
  }
  if (renumber !== undefined) {
    const map = new Uint16Array(offset + 4096);
    map.set(renumber);
    for (let j = 0; j < 4096; j++) map[offset + j] = j;
    for (let i = 0; i < total; i++) owners[i] = map[owners[i]!]!;
  }
  return { positions, owners, base };
}

/** Each member's share of the hash space on the ring of base points (active and idle), in hash units: exact integers. */
function baseShares(active: Points, idle: Points, memberCount: number): Float64Array {
  const shares = new Float64Array(memberCount);
  const { positions: ap, owners: ao, base: ab } = active;
  const { positions: ip, owners: io } = idle;
  const na = ap.length;
  const ni = ip.length;
  let last = -1;
  for (let i = na - 1; i >= 0; i--) {
    if (ab[i] === 1) {
      last = ap[i]!;
      break;
    }
  }
  if (ni > 0 && ip[ni - 1]! > last) last = ip[ni - 1]!;
  if (last < 0) return shares;
  let previous = last - SPAN;
  // Both lists in (position, owner) order, base points only; idle is the short one.
  let j = 0;
  let nextIdle = ni > 0 ? ip[0]! : SPAN;
  for (let i = 0; i < na; i++) {
    const position = ap[i]!;
    while (nextIdle < position || (nextIdle === position && j < ni && io[j]! <= ao[i]!)) {
      shares[io[j]!]! += nextIdle - previous;
      previous = nextIdle;
      nextIdle = ++j < ni ? ip[j]! : SPAN;
    }
    if (ab[i] !== 1) continue;
    shares[ao[i]!]! += position - previous;
    previous = position;
  }
  for (; j < ni; j++) {
    shares[io[j]!]! += ip[j]! - previous;
    previous = ip[j]!;
  }
  return shares;
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
 * (sorted too; same vnodesPerNode and placer): members that stay keep their points, those
 * that left (or changed weight) lose theirs, new ones hash theirs; then every count_X is
 * recomputed and only the points entering or leaving use move. From EMPTY_LAYOUT it builds
 * a ring from scratch; either way the result is the same.
 */
export function relayout(previous: readonly RingNode[], from: Layout, nodes: readonly RingNode[], vnodesPerNode: number, place: PointPlacer = placePoints): Layout {
  // Old and new members in one nodeId order (ranks, for ties), and old index → new index.
  const oldRank = new Uint16Array(previous.length);
  const newRank = new Uint16Array(nodes.length);
  const renumber = new Uint16Array(previous.length).fill(NO_OWNER);
  const wasCount = new Uint32Array(nodes.length);
  const isNew = new Uint8Array(nodes.length).fill(1);
  for (let i = 0, j = 0, rank = 0; i < previous.length || j < nodes.length; rank++) {
    const a = previous[i];
    const b = nodes[j];
    if (a !== undefined && b !== undefined && a.nodeId === b.nodeId) {
      oldRank[i] = rank;
      newRank[j] = rank;
      if (a.weight === b.weight) {
        renumber[i] = j;
        isNew[j] = 0;
        wasCount[j] = from.counts[i]!;
      }
      i++;
      j++;
    } else if (b === undefined || (a !== undefined && a.nodeId < b.nodeId)) oldRank[i++] = rank;
    else newRank[j++] = rank;
  }

  // 1. Membership: points of members gone (or reweighted) out, new members' base points in (all in use for now).
  const dropActive: number[] = [];
  const dropIdle: number[] = [];
  const takenActive = new Set<number>();
  const takenIdle = new Set<number>();
  let scratch = new Uint32Array(64);
  const hash = (nodeId: string, first: number, count: number): Uint32Array => {
    if (scratch.length < count) scratch = new Uint32Array(count);
    place(nodeId, count, scratch, 0, first);
    return scratch;
  };
  for (let i = 0; i < previous.length; i++) {
    if (renumber[i] !== NO_OWNER) continue;
    const base = pointCountFor(previous[i]!.weight, vnodesPerNode);
    const count = from.counts[i]!;
    const end = Math.max(base, count);
    const positions = hash(previous[i]!.nodeId, 0, end);
    for (let k = 0; k < end; k++) {
      const inUse = k < count;
      const taken = inUse ? takenActive : takenIdle;
      const at = find(inUse ? from.active : from.idle, positions[k]!, i, k < base ? 1 : 0, taken);
      if (at < 0) throw new Error(`ring layout: point ${k} of ${previous[i]!.nodeId} not found`);
      taken.add(at);
      (inUse ? dropActive : dropIdle).push(at);
    }
  }
  const joined = new PointList();
  for (let x = 0; x < nodes.length; x++) {
    if (isNew[x] !== 1) continue;
    const base = pointCountFor(nodes[x]!.weight, vnodesPerNode);
    const positions = hash(nodes[x]!.nodeId, 0, base);
    for (let k = 0; k < base; k++) joined.add(positions[k]!, x, 1);
    wasCount[x] = base;
  }
  let active = edit(from.active, dropActive, joined.sorted(), oldRank, newRank, renumber);
  let idle = edit(from.idle, dropIdle, emptyPoints(), oldRank, newRank, renumber);

  // 2. Recount, and move only the points entering or leaving use.
  const counts = correctedCounts(nodes, vnodesPerNode, baseShares(active, idle, nodes.length));
  const toActive = new PointList();
  const toIdle = new PointList();
  dropActive.length = 0;
  dropIdle.length = 0;
  takenActive.clear();
  takenIdle.clear();
  for (let x = 0; x < nodes.length; x++) {
    const was = wasCount[x]!;
    const now = counts[x]!;
    if (was === now) continue;
    const base = pointCountFor(nodes[x]!.weight, vnodesPerNode);
    const low = Math.min(was, now);
    const positions = hash(nodes[x]!.nodeId, low, Math.max(was, now) - low);
    for (let k = low; k < Math.max(was, now); k++) {
      const position = positions[k - low]!;
      const isBase = k < base ? 1 : 0;
      if (now > was) {
        // Entering use: a base point leaves idle, or a point past the base is added.
        if (isBase === 1) {
          const at = find(idle, position, x, 1, takenIdle);
          if (at < 0) throw new Error(`ring layout: idle point ${k} of ${nodes[x]!.nodeId} not found`);
          takenIdle.add(at);
          dropIdle.push(at);
        }
        toActive.add(position, x, isBase);
      } else {
        const at = find(active, position, x, isBase, takenActive);
        if (at < 0) throw new Error(`ring layout: point ${k} of ${nodes[x]!.nodeId} not found`);
        takenActive.add(at);
        dropActive.push(at);
        if (isBase === 1) toIdle.add(position, x, 1);
      }
    }
  }
  if (dropActive.length > 0 || toActive.length > 0) active = edit(active, dropActive, toActive.sorted());
  if (dropIdle.length > 0 || toIdle.length > 0) idle = edit(idle, dropIdle, toIdle.sorted());
  return { active, idle, counts };
}
