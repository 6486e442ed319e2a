import type { Clock } from '../../common/clock.js';
import { Ring } from '../../ring/index.js';
import { routingHash, routingKey, soleNodeOf, versionOf, type RingSnapshot } from './ring-keys.js';
import { HandoffAnnouncements } from './handoff-announcements.js';
import { HandedAwayMarks } from './handed-away.js';
import { RingHistory } from './ring-history.js';
import type { MemberSource } from './view-members.js';

export { META_GRPC, META_HANDED, META_HTTP, META_PROTOCOL, META_STATE, gossipMembers, type MemberSource, type NodeState, type ViewMember } from './view-members.js';
export { PLACEMENT, routingHash, routingKey, type RingSnapshot } from './ring-keys.js';

/** The longest the Members RPC names the ring before a change while its handoff goes on (clientOwners). */
const OLD_RING_FOR_CLIENTS_MAX_MS = 10_000;
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
  /** A ring in force this long counts as settled at the next change, announced or not (the handoff's own backstop); 0 keeps no ring but the last. */
  handoffWindowMs: number;
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
  /** The rings before this one since the cluster last settled; the last of them is `previous`. */
  private readonly history: RingHistory;
  /** The ring's only node, when it has exactly one. */
  private soleOwner: string | undefined;
  private readonly ringOwners: string[] = [];
  /** decidesHere()'s placement, reused. */
  private readonly scratchPlaces: string[] = [];
  /** When the ring last changed (clock ms). */
  changedAtMs = -Infinity;
  private addresses = new Map<string, string>();
  private readonly handedAway: HandedAwayMarks;
  private readonly listeners: (() => void)[] = [];
  /** The current ring's version: the same on every node whose view has the same owners. */
  private version = '';
  /** Each member's last announced handoff (the ring version it has pushed everything for). */
  private readonly announced = new HandoffAnnouncements();
  private readonly handoffListeners: (() => void)[] = [];
  /** The cluster as it was before members vanished (SplitShare): every member seen active and not gone for good. */
  private knownRing: Ring | undefined;
  /** While this node pushes the keys it owned before the last change (Handoff.pushMoved): whether it has yet to send (action, key). */
  private stillHeld: ((action: string, key: string) => boolean) | undefined;
  readonly selfId: string;
  /** Nodes holding each key: its owner and its replicas. */
  private readonly copies: number;

  constructor(
    private readonly components: ClusterViewComponents,
    private readonly init: ClusterViewInit,
  ) {
    this.selfId = init.selfId;
    this.copies = init.replicas + 1;
    const isMember = (nodeId: string): boolean => this.addresses.has(nodeId);
    this.history = new RingHistory(init.selfId, isMember);
    this.handedAway = new HandedAwayMarks(components.clock, init.maxHandedAwayKeys, isMember);
    this.ring = new Ring([]);
    this.previous = this.ring;
    this.refresh();
    this.previous = this.ring;
    this.history.clear();
    this.version = versionOf(this.ring);
    this.changedAtMs = -Infinity; // the first ring is not a change
  }

  // ---- who owns what ------------------------------------------------------------------

  /** The node that decides (action, key) now: where it was handed, else its ring owner, else this node (empty ring). */
  ownerOf(action: string, key: string): string {
    // One owner and no key handed away: no need to hash (a one-node cluster's every request).
    if (this.soleOwner !== undefined && this.handedAway.size === 0) return this.soleOwner;
    const hash = routingHash(action, key);
    const handedTo = this.handedAway.handedTo(action, key);
    if (handedTo !== undefined) return handedTo;
    const owner = this.ring.ownerOfHash(hash) ?? this.selfId;
    return owner !== this.selfId && this.stillHeld !== undefined && this.previous.ownerOfHash(hash) === this.selfId && this.stillHeld(action, key) ? this.selfId : owner;
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
    return this.placementOfHash(action, key, this.soleOwner !== undefined && this.handedAway.size === 0 ? 0 : routingHash(action, key), out);
  }

  /** placement() of a key whose routingHash() is known. */
  placementOfHash(action: string, key: string, hash: number, out: string[]): number {
    const count = this.placeInto(action, key, hash, out);
    if (count === 0) return NO_RING;
    return out[0] === this.selfId ? HERE : count;
  }

  /** Whether this node decides (action, key) now: placement() is HERE. */
  decidesHere(action: string, key: string, hash = routingHash(action, key)): boolean {
    return this.placementOfHash(action, key, hash, this.scratchPlaces) === HERE;
  }

  /** Whether a node that placement() named (a forward's next candidate) is this one: the forward is then decided here. */
  isSelf(nodeId: string): boolean {
    return nodeId === this.selfId;
  }

  /** Where a request for (action, key) goes, into `out` (see placement): 0 on an empty ring. */
  private placeInto(action: string, key: string, hash: number, out: string[]): number {
    if (this.soleOwner !== undefined && this.handedAway.size === 0) {
      out[0] = this.soleOwner;
      return 1;
    }
    const handedTo = this.handedAway.handedTo(action, key);
    if (handedTo === undefined) {
      const count = this.ring.ownersIntoHash(hash, this.init.replicas + 1, out);
      // A key this node owned until the last change and has not pushed yet is still decided here:
      // its new owner gets the state first, then (on the same stream, in order) the forwards.
      if (this.stillHeld !== undefined && count > 0 && out[0] !== this.selfId && this.previous.ownerOfHash(hash) === this.selfId && this.stillHeld(action, key)) out[0] = this.selfId;
      return count;
    }
    out[0] = handedTo;
    const count = this.ring.ownersIntoHash(hash, this.init.replicas + 1, this.ringOwners);
    for (let i = 0; i < count; i++) out[i + 1] = this.ringOwners[i]!;
    return count + 1;
  }

  /** The ring owner of (action, key) and its replicas, into `out`; returns how many. Replication sends to these. */
  holdersInto(action: string, key: string, out: string[]): number {
    return this.holdersOfHash(this.soleOwner !== undefined ? 0 : routingHash(action, key), out);
  }

  /** holdersInto() of a key whose routingHash() is known. */
  holdersOfHash(hash: number, out: string[]): number {
    if (this.soleOwner !== undefined) {
      out[0] = this.soleOwner;
      return 1;
    }
    return this.ring.ownersIntoHash(hash, this.init.replicas + 1, out);
  }

  /**
   * For state a peer sent about (action, key): Refused when `from` is an owner on this node's
   * current ring yet held no copy of the key, now or on any ring since the cluster last settled;
   * else whether this node owns it now. A sender not on the current ring is heard: its view may
   * be ahead of ours (it just turned active) or it is draining. One hash unless `from` is not a holder now.
   */
  judgeSender(from: string, action: string, key: string): SenderVerdict {
    const hash = routingHash(action, key);
    const count = this.ring.ownersIntoHash(hash, this.init.replicas + 1, this.ringOwners);
    let holder = false;
    for (let i = 0; i < count && !holder; i++) holder = this.ringOwners[i] === from;
    const owner = this.handedAway.handedTo(action, key) ?? (count > 0 ? this.ringOwners[0]! : this.selfId);
    if (!holder) holder = this.history.heldBy(hash, this.init.replicas + 1, from, this.ringOwners);
    if (!holder && this.ring.has(from)) return SenderVerdict.Refused;
    return owner === this.selfId ? SenderVerdict.OwnedHere : SenderVerdict.OwnedElsewhere;
  }

  /** Whether this node owns (action, key) on the current ring and `from` is its only other holder (a pusher that keeps the same copy as its replica). */
  ownedHereHeldBy(from: string, action: string, key: string): boolean {
    const count = this.ring.ownersIntoHash(routingHash(action, key), this.init.replicas + 1, this.ringOwners);
    return count === 2 && this.ringOwners[0] === this.selfId && this.ringOwners[1] === from && this.handedAway.handedTo(action, key) === undefined;
  }

  /** The current ring's version (see META_HANDED). */
  get ringVersion(): string {
    return this.version;
  }

  /** Whether `nodeId` has announced that it pushed everything it held for the current ring: nothing more to pull from it. */
  hasHandedOver(nodeId: string): boolean {
    return this.announced.has(nodeId, this.version);
  }

  /** `nodeId` told this node directly that it handed over for ring `version`; a member only (bounded by them). */
  noteHandedOver(nodeId: string, version: string): void {
    if (this.addresses.has(nodeId) && this.announced.told(nodeId, version)) this.handoffNews();
  }

  /** A member announced: once all have, for the ring in force, the rings before the last one hold nothing more. */
  private handoffNews(): void {
    if (this.history.list.length > 1 && this.settled()) this.history.changedFrom(this.previous, true);
    for (const listener of this.handoffListeners) listener();
  }

  /** The members that may hold state this node needs after the last change: every other member of a ring since the cluster last settled, or of this one. */
  handoffPeers(): string[] {
    const peers = new Set<string>();
    this.history.membersInto(peers);
    for (const m of this.ring.members) peers.add(m.nodeId);
    return [...peers].filter((nodeId) => nodeId !== this.selfId && this.addresses.has(nodeId));
  }

  /** Whether this node owned (action, key) on every ring since the cluster last settled, and no newcomer may have decided it on a ring of its own (RingHistory.newcomerAfter) that has not announced its push: its state has nowhere else to be. */
  ownedHereBefore(action: string, key: string): boolean {
    const hash = routingHash(action, key);
    if (!this.history.ownedOnEach(hash, this.selfId)) return false;
    const newcomer = this.history.newcomerAfter(hash, this.ring, this.ringOwners);
    return newcomer === undefined || this.hasHandedOver(newcomer);
  }

  /** Who may hold (action, key)'s state that this node, its owner now, has not got (RingHistory.pullSourcesInto), into `out`; returns how many. */
  pullSourcesInto(action: string, key: string, out: string[]): number {
    return this.history.pullSourcesInto(routingHash(action, key), this.ring, this.copies, out, this.ringOwners);
  }

  /** Every holder (owner or replica) of (action, key) on a ring since the cluster last settled, into `out` (this node never); returns how many. */
  earlierHoldersInto(action: string, key: string, out: string[]): number {
    return this.history.holdersInto(routingHash(action, key), this.copies, out, this.ringOwners);
  }

  /** Whether `from` (or this node) owned (action, key) on every ring since the cluster last settled: once `from` pushed it, nobody else holds it. */
  onlyEarlierOwner(action: string, key: string, from: string): boolean {
    return this.history.list.length > 0 && this.history.ownedOnlyBy(routingHash(action, key), from, this.selfId);
  }

  /**
   * Where this node must push (action, key)'s state after the last ring change, or undefined: to its new owner, when
   * its owner changed and this node held it for the cluster — its previous owner, or (that owner gone) one of its
   * previous replicas — and whenever it owned it on a ring since the cluster last settled (a push cut short by the
   * next change, or a view that lagged, may have left its only state here).
   */
  handOverTo(action: string, key: string, hash = routingHash(action, key)): string | undefined {
    const now = this.ring.ownerOfHash(hash);
    if (now === undefined || now === this.selfId) return undefined;
    if (this.history.ownedOnSome(hash, this.selfId)) return now;
    const before = this.previous.ownerOfHash(hash);
    if (now === before || (before !== undefined && this.addresses.has(before))) return undefined;
    const holders = this.previous.ownersIntoHash(hash, this.init.replicas + 1, this.ringOwners);
    for (let i = 1; i < holders; i++) if (this.ringOwners[i] === this.selfId) return now;
    return undefined;
  }

  /** While this node pushes the keys it no longer owns, `test` says which it has not sent yet (placement() keeps those here); undefined once all are sent. */
  setStillHeld(test: ((action: string, key: string) => boolean) | undefined): void {
    this.stillHeld = test;
  }

  /** Whether this node decides (action, key) only because it has not pushed it to its new owner yet (setStillHeld). */
  heldUntilPushed(action: string, key: string, hash = routingHash(action, key)): boolean {
    if (this.stillHeld === undefined) return false;
    return this.ring.ownerOfHash(hash) !== this.selfId && this.previous.ownerOfHash(hash) === this.selfId && this.handedAway.handedTo(action, key) === undefined && this.stillHeld(action, key);
  }

  /** The members the cluster had before some vanished (split-share.ts); undefined when none is missing. */
  setKnownMembers(nodeIds: readonly string[] | undefined): void {
    this.knownRing = nodeIds === undefined ? undefined : this.ring.withMembers(nodeIds.map((nodeId) => ({ nodeId })));
  }

  /** Whether every holder of (action, key) on the ring of known members (owner and replicas) is `missing`. */
  allKnownHolders(action: string, key: string, missing: (nodeId: string) => boolean): boolean {
    if (this.knownRing === undefined) return false;
    const count = this.knownRing.ownersInto(routingKey(action, key), this.init.replicas + 1, this.ringOwners);
    for (let i = 0; i < count; i++) if (!missing(this.ringOwners[i]!)) return false;
    return count > 0;
  }

  /** Runs `listener` when a member announces a handoff (its META_HANDED changed). */
  onHandoffNews(listener: () => void): void {
    this.handoffListeners.push(listener);
  }

  /** The ring in force now: an immutable snapshot, to compare a later ring with (holdersOnInto). */
  get currentRing(): RingSnapshot {
    return this.ring;
  }

  /** The key's holders (owner, then replicas) on `ring`, a snapshot from currentRing, into `out`; returns how many. */
  holdersOnInto(ring: RingSnapshot, action: string, key: string, out: string[], hash = routingHash(action, key)): number {
    return ring.ownersIntoHash(hash, this.init.replicas + 1, out);
  }

  /** Routes (action, key) to `nodeId` until `untilMs` (this node answered its pull; see HandedAwayMarks). Bounded. */
  markHandedAway(action: string, key: string, nodeId: string, untilMs: number): void {
    this.handedAway.mark(action, key, nodeId, untilMs);
  }
  /** Forgets that (action, key) was handed to `nodeId`, if it was; returns whether it was. */
  releaseHandedAway(action: string, key: string, nodeId: string): boolean {
    return this.handedAway.release(action, key, nodeId);
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

  /** Owners with their gRPC addresses. */
  ownerAddresses(): { nodeId: string; address: string }[] {
    return this.ring.members.map((m) => ({ nodeId: m.nodeId, address: this.addresses.get(m.nodeId) ?? '' }));
  }

  /**
   * The owners a ring-aware client routes by (the Members RPC): the ring before the last change until every member
   * has announced its push for the new one — the old owners still decide the keys they have not pushed, and forward
   * the others after their state — then the new ring (a client that routed to a new owner at once would make it wait
   * for state on every first access). The old ring only while all its members are alive, and at most OLD_RING_FOR_CLIENTS_MAX_MS.
   */
  clientOwners(): { nodeId: string; address: string }[] {
    const ring = this.handoffOver() ? this.ring : this.previous;
    return ring.members.map((m) => ({ nodeId: m.nodeId, address: this.addresses.get(m.nodeId) ?? '' }));
  }

  private handoffOver(): boolean {
    if (this.previous === this.ring || this.previous.size === 0) return true;
    if (this.components.clock.now() - this.changedAtMs > OLD_RING_FOR_CLIENTS_MAX_MS) return true;
    for (const m of this.previous.members) if (!this.addresses.has(m.nodeId)) return true;
    for (const nodeId of this.addresses.keys()) if (!this.hasHandedOver(nodeId) && (this.ring.has(nodeId) || this.previous.has(nodeId))) return false;
    return true;
  }

  get ownerCount(): number {
    return this.ring.size;
  }

  /** Every other member with its gRPC address, owner or not (joining, draining). */
  otherMembers(): [nodeId: string, address: string][] {
    return [...this.addresses].filter(([nodeId]) => nodeId !== this.selfId);
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
    const handedNews = this.announced.read(this.components.members.current(), addresses);
    if (owners.length === this.ring.size && owners.every((m) => this.ring.has(m.nodeId))) {
      if (handedNews) this.handoffNews();
      return;
    }
    const next = this.ring.withMembers(owners);
    const nextVersion = versionOf(next);
    this.history.changedFrom(this.ring, this.settled(nextVersion));
    this.previous = this.ring;
    this.ring = next;
    this.version = nextVersion;
    this.soleOwner = soleNodeOf(this.ring);
    this.changedAtMs = this.components.clock.now();
    this.handedAway.dropStale();
    for (const listener of this.listeners) listener();
  }

  /**
   * Whether nothing from before the ring in force can be held or decided elsewhere: it is the
   * first, or old, or every peer and this node announced its push for it or (at a change) for
   * the ring coming in, `next`: a faster peer's newer announcement replaces the older one.
   */
  private settled(next = ''): boolean {
    if (this.previous === this.ring || this.components.clock.now() - this.changedAtMs > this.init.handoffWindowMs) return true;
    const announced = (nodeId: string): boolean => this.hasHandedOver(nodeId) || (next !== '' && this.announced.has(nodeId, next));
    return announced(this.selfId) && this.handoffPeers().every(announced);
  }
}
