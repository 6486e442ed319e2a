import type { Clock } from '../../common/clock.js';
import type { Membership } from '../../gossip/index.js';
import { Ring } from '../../ring/index.js';
import { fnv1a32 } from '../../common/fnv.js';

/** Metadata every node publishes through gossip. */
export const META_GRPC = 'grpc';
export const META_STATE = 'state';
export const META_PROTOCOL = 'pv';
/** The node's HTTP address, when it serves HTTP (ringlimit status reads every member's metrics there). */
export const META_HTTP = 'http';
/** The ring (its version) for which the node has pushed every key state it held to the key's new owner: pull nothing more from it. */
export const META_HANDED = 'ho';

/** joining: not routed to until its view is complete; draining: handing its keys over. */
export type NodeState = 'joining' | 'active' | 'draining';

/** A ring as it was at some moment (ClusterView.currentRing): only ClusterView asks it who owns a key. */
export type RingSnapshot = Ring;

/** Names how keys are placed (the Members RPC tells clients): routingKey() on the Ring of src/ring. */
export const PLACEMENT = 'ringlimit-ring-v2';

/** What the ring places for (action, key): both parts, so one user's actions spread over nodes. */
export function routingKey(action: string, key: string): string {
  return `${action}\u0000${key}`;
}

/** A ring's version: a digest of its owners, the same wherever the same owners are seen. */
function versionOf(ring: Ring): string {
  const ids = ring.members.map((m) => m.nodeId).sort();
  return `${ids.length}.${fnv1a32(ids.join('\n')).toString(36)}`;
}

function soleNodeOf(ring: Ring): string | undefined {
  return ring.size === 1 ? ring.nodeIdAt(0) : undefined;
}

/** placement(): this node decides the key now. */
export const HERE = 0;
/** placement(): no node decides it yet — the ring is empty (this node is joining). */
export const NO_RING = -1;

/** judgeSender's answer. */
export const enum SenderVerdict {
  Refused = 0,
  OwnedHere = 1,
  OwnedElsewhere = 2,
}

/** One node as a view sees it: where it answers, and whether it owns keys now. */
export interface ViewMember {
  nodeId: string;
  /** gRPC host:port. */
  address: string;
  /** Active: on the ring. Joining and draining nodes answer peers (handoff) but own nothing. */
  owns: boolean;
  /** The ring version it has handed over for (META_HANDED), if any. */
  handed?: string | undefined;
}

/** What a view is built from: gossip membership in a node, the Members RPC in a client. */
export interface MemberSource {
  current(): readonly ViewMember[];
}

/** A node's members as gossip sees them, with the gRPC address and state each publishes. */
export function gossipMembers(membership: Membership): MemberSource {
  return {
    current: () => {
      const list: ViewMember[] = [];
      for (const m of membership.members()) {
        const address = m.meta[META_GRPC];
        if (address !== undefined) list.push({ nodeId: m.nodeId, address, owns: m.meta[META_STATE] === 'active', handed: m.meta[META_HANDED] });
      }
      return list;
    },
  };
}

export interface ClusterViewComponents {
  members: MemberSource;
  clock: Clock;
}

export interface ClusterViewInit {
  selfId: string;
  /** Distinct nodes after the owner that hold a copy of each key. */
  replicas: number;
  /** Bound on keys remembered as handed away. */
  maxHandedAwayKeys: number;
}

interface HandedAway {
  nodeId: string;
  untilMs: number;
}

/**
 * The one answer to "who owns this key", for nodes and for the ring-aware client alike.
 * The ring is rebuilt (never mutated) whenever the set of active members changes; the ring before the last change is kept for
 * handoff; and keys this node handed to another one on a pull are routed there until the
 * mark expires, even before this node's ring shows the change. Nothing else in the node
 * looks at a ring.
 */
export class ClusterView {
  private ring: Ring;
  private previous: Ring;
  /** The ring's only node, when it has exactly one. */
  private soleOwner: string | undefined;
  private readonly ringOwners: string[] = [];
  /** decidesHere()'s placement, reused. */
  private readonly scratchPlaces: string[] = [];
  /** When the ring last changed (clock ms). */
  changedAtMs = -Infinity;
  private addresses = new Map<string, string>();
  private readonly handedAway = new Map<string, HandedAway>();
  private readonly listeners: (() => void)[] = [];
  /** The current ring's version: the same on every node whose view has the same owners. */
  private version = '';
  /** Each member's last announced handoff (the ring version it has pushed everything for). */
  private handedBy = new Map<string, string>();
  /** The same, as told directly (a HandoffDone frame): it arrives before gossip spreads the meta. One per member. */
  private readonly handedDirect = new Map<string, string>();
  private readonly handoffListeners: (() => void)[] = [];
  readonly selfId: string;

  constructor(
    private readonly components: ClusterViewComponents,
    private readonly init: ClusterViewInit,
  ) {
    this.selfId = init.selfId;
    this.ring = new Ring([]);
    this.previous = this.ring;
    this.refresh();
    this.previous = this.ring;
    this.version = versionOf(this.ring);
    this.changedAtMs = -Infinity; // the first ring is not a change
  }

  // ---- who owns what ------------------------------------------------------------------

  /** The node that decides (action, key) now: where it was handed, else its ring owner, else this node (empty ring). */
  ownerOf(action: string, key: string): string {
    // One owner and no key handed away: no need to hash (a one-node cluster's every request).
    if (this.soleOwner !== undefined && this.handedAway.size === 0) return this.soleOwner;
    const id = routingKey(action, key);
    return this.handedTo(id) ?? this.ring.nodeIdAt(this.ring.ownerIndex(id)) ?? this.selfId;
  }

  /**
   * "Decide here, or where?" — the one answer, which every path asks (the node's API, a
   * forward received, an operator's call, replication, hot keys): HERE when this node
   * decides (action, key) now; NO_RING while no node can (the ring is empty: this node is
   * joining and decides nothing, since the key's owner holds its state); else how many nodes
   * were written into `out`, its owner first and then the replicas a forward fails over to.
   * One hash. `out` may be the caller's reused array.
   */
  placement(action: string, key: string, out: string[]): number {
    const count = this.placeInto(action, key, out);
    if (count === 0) return NO_RING;
    return out[0] === this.selfId ? HERE : count;
  }

  /** Whether this node decides (action, key) now: placement() is HERE. */
  decidesHere(action: string, key: string): boolean {
    return this.placement(action, key, this.scratchPlaces) === HERE;
  }

  /** Whether a node that placement() named (a forward's next candidate) is this one: the forward is then decided here. */
  isSelf(nodeId: string): boolean {
    return nodeId === this.selfId;
  }

  /** Where a request for (action, key) goes, into `out` (see placement): 0 on an empty ring. */
  private placeInto(action: string, key: string, out: string[]): number {
    if (this.soleOwner !== undefined && this.handedAway.size === 0) {
      out[0] = this.soleOwner;
      return 1;
    }
    const id = routingKey(action, key);
    const handedTo = this.handedTo(id);
    if (handedTo === undefined) return this.ring.ownersInto(id, this.init.replicas + 1, out);
    out[0] = handedTo;
    const count = this.ring.ownersInto(id, this.init.replicas + 1, this.ringOwners);
    for (let i = 0; i < count; i++) out[i + 1] = this.ringOwners[i]!;
    return count + 1;
  }

  /** The ring owner of (action, key) and its replicas, into `out`; returns how many. Replication sends to these. */
  holdersInto(action: string, key: string, out: string[]): number {
    if (this.soleOwner !== undefined) {
      out[0] = this.soleOwner;
      return 1;
    }
    return this.ring.ownersInto(routingKey(action, key), this.init.replicas + 1, out);
  }

  /**
   * For state a peer sent about (action, key): Refused when `from` is an owner on this
   * node's current ring yet held no copy of the key — neither its owner nor a replica now,
   * nor before the last change (a settled member has no business sending state for other
   * keys); else whether this node owns it now. A sender that is not on the current ring
   * is heard: its view may be ahead of ours (it just turned active and re-sends its keys)
   * or it is draining, several changes ago. One hash unless `from` is not a holder now.
   */
  judgeSender(from: string, action: string, key: string): SenderVerdict {
    const id = routingKey(action, key);
    const count = this.ring.ownersInto(id, this.init.replicas + 1, this.ringOwners);
    let holder = false;
    for (let i = 0; i < count && !holder; i++) holder = this.ringOwners[i] === from;
    const owner = this.handedTo(id) ?? (count > 0 ? this.ringOwners[0]! : this.selfId);
    if (!holder && this.previous !== this.ring) {
      const before = this.previous.ownersInto(id, this.init.replicas + 1, this.ringOwners);
      for (let i = 0; i < before && !holder; i++) holder = this.ringOwners[i] === from;
    }
    if (!holder && this.ring.has(from)) return SenderVerdict.Refused;
    return owner === this.selfId ? SenderVerdict.OwnedHere : SenderVerdict.OwnedElsewhere;
  }

  /** The current ring's version (see META_HANDED). */
  get ringVersion(): string {
    return this.version;
  }

  /** Whether `nodeId` has announced that it pushed everything it held for the current ring: nothing more to pull from it. */
  hasHandedOver(nodeId: string): boolean {
    return this.handedBy.get(nodeId) === this.version || this.handedDirect.get(nodeId) === this.version;
  }

  /** `nodeId` told this node directly that it handed over for ring `version`; a member only (bounded by them). */
  noteHandedOver(nodeId: string, version: string): void {
    if (!this.addresses.has(nodeId) || this.handedDirect.get(nodeId) === version) return;
    this.handedDirect.set(nodeId, version);
    for (const listener of this.handoffListeners) listener();
  }

  /** The members that may hold state this node needs after the last change: every other member of the ring before it, or of this one. */
  handoffPeers(): string[] {
    const peers = new Set<string>();
    for (const m of this.previous.members) if (m.nodeId !== this.selfId && this.addresses.has(m.nodeId)) peers.add(m.nodeId);
    for (const m of this.ring.members) if (m.nodeId !== this.selfId) peers.add(m.nodeId);
    return [...peers];
  }

  /**
   * Where this node must push (action, key)'s state after the last ring change, or undefined:
   * to its new owner, when its owner changed and this node was the one that held it for the
   * cluster — its previous owner, or (that owner being gone) one of its previous replicas.
   */
  handOverTo(action: string, key: string): string | undefined {
    const id = routingKey(action, key);
    const now = this.ring.owner(id);
    const before = this.previous.owner(id);
    if (now === undefined || now === before || now === this.selfId) return undefined;
    if (before === this.selfId) return now;
    if (before !== undefined && this.addresses.has(before)) return undefined;
    const holders = this.previous.ownersInto(id, this.init.replicas + 1, this.ringOwners);
    for (let i = 1; i < holders; i++) if (this.ringOwners[i] === this.selfId) return now;
    return undefined;
  }

  /** Runs `listener` when a member announces a handoff (its META_HANDED changed). */
  onHandoffNews(listener: () => void): void {
    this.handoffListeners.push(listener);
  }

  /** The owner before the last ring change, if this node was on that ring. */
  previousOwnerOf(action: string, key: string): string | undefined {
    return this.previous.has(this.selfId) ? this.previous.owner(routingKey(action, key)) : undefined;
  }

  /** The ring in force now: an immutable snapshot, to compare a later ring with (holdersOnInto). */
  get currentRing(): RingSnapshot {
    return this.ring;
  }

  /** The key's holders (owner, then replicas) on `ring`, a snapshot from currentRing, into `out`; returns how many. */
  holdersOnInto(ring: RingSnapshot, action: string, key: string, out: string[]): number {
    return ring.ownersInto(routingKey(action, key), this.init.replicas + 1, out);
  }

  /** The key's holders (owner, then replicas) on the ring before the last change, into `out`; returns how many. */
  previousHoldersInto(action: string, key: string, out: string[]): number {
    return this.previous.ownersInto(routingKey(action, key), this.init.replicas + 1, out);
  }

  /** The node after the owner on the current ring: it held the key while the owner was away. */
  successorOf(action: string, key: string): string | undefined {
    return this.ring.owners(routingKey(action, key), 2)[1];
  }

  /** Routes (action, key) to `nodeId` until `untilMs` (this node answered its pull). Bounded. */
  markHandedAway(action: string, key: string, nodeId: string, untilMs: number): void {
    if (this.handedAway.size < this.init.maxHandedAwayKeys) this.handedAway.set(routingKey(action, key), { nodeId, untilMs });
  }

  private handedTo(id: string): string | undefined {
    if (this.handedAway.size === 0) return undefined;
    const mark = this.handedAway.get(id);
    if (mark === undefined) return undefined;
    if (mark.untilMs < this.components.clock.now() || !this.ring.has(mark.nodeId)) {
      this.handedAway.delete(id);
      return undefined;
    }
    return mark.nodeId;
  }

  // ---- members ------------------------------------------------------------------------

  /** Each owner's share of the keys on the current ring (0..1), by node id. */
  ownershipShares(): Map<string, number> {
    return this.ring.shares();
  }

  /** Node ids owning keys, in nodeId order. */
  ownerIds(): string[] {
    return this.ring.members.map((m) => m.nodeId);
  }

  /** Owners with their gRPC addresses (the Members RPC). */
  ownerAddresses(): { nodeId: string; address: string }[] {
    return this.ring.members.map((m) => ({ nodeId: m.nodeId, address: this.addresses.get(m.nodeId) ?? '' }));
  }

  get ownerCount(): number {
    return this.ring.size;
  }

  /** gRPC address of a member, or undefined when it is not (or no longer) known. */
  addressOf(nodeId: string): string | undefined {
    return this.addresses.get(nodeId);
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Re-reads the member source (call it when members change); makes a new ring, from the current one, only when the owner set changed. */
  refresh(): void {
    const owners: { nodeId: string }[] = [];
    const addresses = new Map<string, string>();
    for (const m of this.components.members.current()) {
      addresses.set(m.nodeId, m.address);
      if (m.owns) owners.push({ nodeId: m.nodeId });
    }
    this.addresses = addresses;
    for (const nodeId of this.handedDirect.keys()) if (!addresses.has(nodeId)) this.handedDirect.delete(nodeId);
    const handedNews = this.readHanded();
    if (owners.length === this.ring.size && owners.every((m) => this.ring.has(m.nodeId))) {
      if (handedNews) for (const listener of this.handoffListeners) listener();
      return;
    }
    this.previous = this.ring;
    this.ring = this.ring.withMembers(owners);
    this.version = versionOf(this.ring);
    this.soleOwner = soleNodeOf(this.ring);
    this.changedAtMs = this.components.clock.now();
    this.dropStaleMarks();
    for (const listener of this.listeners) listener();
  }

  /** Reads every member's announced handoff; whether one changed. */
  private readHanded(): boolean {
    const handed = new Map<string, string>();
    let changed = false;
    for (const m of this.components.members.current()) {
      if (m.handed === undefined) continue;
      handed.set(m.nodeId, m.handed);
      if (this.handedBy.get(m.nodeId) !== m.handed) changed = true;
    }
    if (handed.size !== this.handedBy.size) changed = true;
    this.handedBy = handed;
    return changed;
  }

  private dropStaleMarks(): void {
    const nowMs = this.components.clock.now();
    for (const [id, mark] of this.handedAway) if (mark.untilMs < nowMs || !this.ring.has(mark.nodeId)) this.handedAway.delete(id);
  }
}
