import { invalidArgument } from '../common/errors.js';
import { distinctOwnersInto, pointIndexAt } from './lookup.js';
import { murmur3Int32 } from './murmur3.js';
import { EMPTY_LAYOUT, relayout, type Layout } from './layout.js';
import { OWNER_MASK, type PointTable, type RingNode } from './points.js';
import { checkPointCount, resolveNodes, resolveVnodesPerNode, type RingMember, type RingOptions } from './validate.js';

/** hashKey as a signed int32 (no heap number on return). */
function keyHashBits(key: string): number {
  // A number or undefined would otherwise hash like '' and route silently.
  if (typeof key !== 'string') throw invalidArgument('key', 'must be a string');
  return murmur3Int32(key, 0);
}

/** Where a key sits on the ring: MurmurHash3 x86 32-bit, seed 0, of its UTF-8 bytes (unsigned). */
export function hashKey(key: string): number {
  return keyHashBits(key) >>> 0;
}

function checkCount(count: number): void {
  if (!Number.isInteger(count) || count < 0) {
    throw invalidArgument('count', 'must be a non-negative integer');
  }
}

/**
 * An immutable consistent-hash ring: each node places about `weight × vnodesPerNode`
 * points at hashes of its own id (a few more or fewer, so that every share is close to
 * fair: src/ring/layout.ts), and a key belongs to the node of the first point at or
 * clockwise after the key's hash. A membership change makes a new Ring from the old one
 * (withMembers) in a few linear passes; a removed node's keys go to their first replica,
 * and a change moves about 1/N of the keys (plus the few arcs that rebalancing shifts).
 *
 * An empty ring owns nothing: `owner` returns undefined, `ownerIndex` -1, `owners` [].
 */
const HASH_SPACE = 2 ** 32;

export class Ring {
  /** Members sorted by nodeId, frozen. Member indexes below refer to this order. */
  readonly members: readonly RingNode[];
  readonly size: number;
  readonly vnodesPerNode: number;
  readonly pointCount: number;
  readonly #table: PointTable;
  readonly #layout: Layout;
  readonly #nodeIds: readonly string[];
  /** Point owners are slots (layout.ts): slot → member index, and slot → nodeId. */
  readonly #memberOfSlot: Uint16Array;
  readonly #nodeIdOfSlot: readonly string[];
  readonly #indexByNodeId: ReadonlyMap<string, number>;

  /**
   * @param from a ring to start from (its vnodesPerNode must match): the same ring results,
   * but only the points of members that joined, left or changed weight are hashed.
   */
  constructor(members: readonly RingMember[], options?: RingOptions, from?: Ring) {
    const vnodesPerNode = resolveVnodesPerNode(options);
    const nodes = resolveNodes(members);
    checkPointCount(nodes, vnodesPerNode);
    this.members = nodes;
    this.size = nodes.length;
    this.vnodesPerNode = vnodesPerNode;
    const reuse = from !== undefined && from.vnodesPerNode === vnodesPerNode;
    this.#layout = relayout(reuse ? from.members : [], reuse ? from.#layout : EMPTY_LAYOUT, nodes, vnodesPerNode);
    this.#table = this.#layout.table;
    this.pointCount = this.#table.points.length;
    this.#nodeIds = Object.freeze(nodes.map((node) => node.nodeId));
    const slots = this.#layout.slots;
    let slotCount = 0;
    for (const slot of slots) slotCount = Math.max(slotCount, slot + 1);
    this.#memberOfSlot = new Uint16Array(slotCount);
    const nodeIdOfSlot: string[] = new Array<string>(slotCount).fill('');
    for (let x = 0; x < slots.length; x++) {
      this.#memberOfSlot[slots[x]!] = x;
      nodeIdOfSlot[slots[x]!] = this.#nodeIds[x]!;
    }
    this.#nodeIdOfSlot = Object.freeze(nodeIdOfSlot);
    this.#indexByNodeId = new Map(this.#nodeIds.map((nodeId, index) => [nodeId, index]));
    Object.freeze(this);
  }

  /** Each member's share of the hash space (0..1, summing to 1), by nodeId: the keys it owns, on average. */
  shares(): Map<string, number> {
    const { points, pointOwners } = this.#table;
    const out = new Map<string, number>(this.#nodeIds.map((id) => [id, 0]));
    const n = points.length;
    for (let i = 0; i < n; i++) {
      // Point i owns the hashes after the previous point up to itself (point 0 wraps around).
      const previous = i === 0 ? points[n - 1]! - HASH_SPACE : points[i - 1]!;
      const id = this.#nodeIdOfSlot[pointOwners[i]! & OWNER_MASK]!;
      out.set(id, out.get(id)! + (points[i]! - previous) / HASH_SPACE);
    }
    return out;
  }

  has(nodeId: string): boolean {
    return this.#indexByNodeId.has(nodeId);
  }

  /** Index of `nodeId` in `members`, or -1. */
  indexOf(nodeId: string): number {
    return this.#indexByNodeId.get(nodeId) ?? -1;
  }

  /** The nodeId of member `index`, or undefined when out of range. */
  nodeIdAt(index: number): string | undefined {
    return this.#nodeIds[index];
  }

  /**
   * Member index owning a precomputed `hashKey(key)`, or -1 on an empty ring. The
   * signed form (`hashKey(key) | 0`) is accepted too and avoids heap numbers.
   */
  ownerIndexOfHash(hash: number): number {
    const points = this.#table.points;
    if (points.length === 0) return -1;
    return this.#memberOfSlot[this.#table.pointOwners[pointIndexAt(this.#table, hash)]! & OWNER_MASK]!;
  }

  /** Member index owning `key`, or -1 on an empty ring. Allocates nothing. */
  ownerIndex(key: string): number {
    return this.ownerIndexOfHash(keyHashBits(key));
  }

  /** The nodeId owning `key`, or undefined on an empty ring. Allocates nothing. */
  owner(key: string): string | undefined {
    return this.#nodeIds[this.ownerIndexOfHash(keyHashBits(key))];
  }

  /** owner() of a precomputed `hashKey(key)` (signed or unsigned). */
  ownerOfHash(hash: number): string | undefined {
    return this.#nodeIds[this.ownerIndexOfHash(hash)];
  }

  /**
   * Writes the owner and then the next distinct nodes clockwise (the replicas) into
   * `out[0..]`, at most `count` (fewer when the ring is smaller); returns how many.
   * Allocates nothing once `out` has grown to `count`.
   */
  ownersInto(key: string, count: number, out: string[]): number {
    return this.ownersIntoHash(keyHashBits(key), count, out);
  }

  /** ownersInto() of a precomputed `hashKey(key)` (signed or unsigned). */
  ownersIntoHash(hash: number, count: number, out: string[]): number {
    checkCount(count);
    const points = this.#table.points;
    if (points.length === 0 || count === 0) return 0;
    return distinctOwnersInto(this.#table, this.#nodeIdOfSlot, pointIndexAt(this.#table, hash), count, out, this.size);
  }

  /** Owner then replicas: the first `count` distinct nodes clockwise from `key`. */
  owners(key: string, count: number): string[] {
    const out: string[] = [];
    this.ownersInto(key, count, out);
    return out;
  }

  /** The ring of `members`, made from this one (only what changed is hashed): equal to `new Ring(members, { vnodesPerNode })`. */
  withMembers(members: readonly RingMember[]): Ring {
    return new Ring(members, { vnodesPerNode: this.vnodesPerNode }, this);
  }

  /** A new ring with `member` added, or with its weight replaced when already present. */
  withMember(member: RingMember): Ring {
    const nodeId = (member as RingMember | null)?.nodeId; // validated by the constructor
    const others = this.members.filter((node) => node.nodeId !== nodeId);
    return this.withMembers([...others, member]);
  }

  /** A new ring without `nodeId`; this ring itself when it has no such member. */
  withoutMember(nodeId: string): Ring {
    if (!this.has(nodeId)) return this;
    return this.withMembers(this.members.filter((node) => node.nodeId !== nodeId));
  }

  /** Points `nodeId` has in use (its base points, a few more or fewer after balancing); 0 when not a member. */
  pointCountOf(nodeId: string): number {
    const index = this.#indexByNodeId.get(nodeId);
    return index === undefined ? 0 : this.#layout.counts[index]!;
  }

  /** Bytes of typed arrays this ring holds (its lookup table and its layout). */
  byteSize(): number {
    const t = this.#table;
    const { active, idle, counts, shares } = this.#layout;
    const points = (p: typeof active): number => p.positions.byteLength + p.owners.byteLength;
    return points(active) + points(idle) + t.bucketStarts.byteLength + counts.byteLength + shares.byteLength + this.#memberOfSlot.byteLength;
  }
}
