import type { Ring } from '../../ring/index.js';

/** Earlier rings kept at most; past it the oldest is dropped (a view that many changes behind is past any handoff window). */
export const MAX_EARLIER_RINGS = 8;

/**
 * The rings before the current one since the cluster last settled: since the last ring for
 * which every member that may hold state had announced its push. Members' views change at
 * different moments, and one may lag several changes behind this node's: it still decides the
 * keys it owns on whichever of these rings it sees. So "who may hold this key's state" is
 * asked of every ring here, not only of the one just before the current ring. Oldest first;
 * the last is the ring just before the current one.
 */
export class RingHistory {
  private rings: Ring[] = [];

  constructor(
    private readonly selfId: string,
    /** Whether a node is a member now (alive, with an address). */
    private readonly isMember: (nodeId: string) => boolean,
  ) {}

  /** The ring changed away from `ring`; `settled`: nothing from before `ring` can still be held or decided elsewhere. */
  changedFrom(ring: Ring, settled: boolean): void {
    if (settled) {
      this.rings = [ring];
      return;
    }
    if (this.rings.length >= MAX_EARLIER_RINGS) this.rings.shift();
    this.rings.push(ring);
  }

  clear(): void {
    this.rings = [];
  }

  /** The earlier rings, oldest first. */
  get list(): readonly Ring[] {
    return this.rings;
  }

  /** Whether `nodeId` owned the key on each earlier ring (false when there is none). */
  ownedOnEach(hash: number, nodeId: string): boolean {
    for (const ring of this.rings) if (ring.ownerOfHash(hash) !== nodeId) return false;
    return this.rings.length > 0;
  }

  /**
   * The node after this one for the key on `current` (its owner on `current` without this
   * node) when that node is on no earlier ring: a newcomer. Its view may never have held this
   * node (two nodes joining at once), so it may have decided the key on a ring of its own; it
   * is asked before this node decides the key (KeyPulls), until it announces its push.
   */
  newcomerAfter(hash: number, current: Ring, scratch: string[]): string | undefined {
    if (this.rings.length === 0 || current.ownersIntoHash(hash, 2, scratch) < 2 || scratch[0] !== this.selfId) return undefined;
    const next = scratch[1]!;
    for (const ring of this.rings) if (ring.has(next)) return undefined;
    return next;
  }

  /** Whether `nodeId` owned the key on some earlier ring. */
  ownedOnSome(hash: number, nodeId: string): boolean {
    for (const ring of this.rings) if (ring.ownerOfHash(hash) === nodeId) return true;
    return false;
  }

  /** Whether each earlier ring's owner of the key is one of `a` and `b`. */
  ownedOnlyBy(hash: number, a: string, b: string): boolean {
    for (const ring of this.rings) {
      const owner = ring.ownerOfHash(hash);
      if (owner !== a && owner !== b) return false;
    }
    return true;
  }

  /** Whether `nodeId` held a copy of the key (its owner or one of copies − 1 replicas) on some earlier ring. `scratch` is reused. */
  heldBy(hash: number, copies: number, nodeId: string, scratch: string[]): boolean {
    for (const ring of this.rings) {
      const count = ring.ownersIntoHash(hash, copies, scratch);
      for (let i = 0; i < count; i++) if (scratch[i] === nodeId) return true;
    }
    return false;
  }

  /**
   * Who may hold the key's state that this node, its owner on `current`, has not got, into
   * `out` (never this node); returns how many. Its owner on each earlier ring (a member whose
   * view lags still decides it by one of them; a gone owner's replicas there instead), and the
   * node after this one on `current`: it held the key while this node was away. `scratch` is reused.
   */
  pullSourcesInto(hash: number, current: Ring, copies: number, out: string[], scratch: string[]): number {
    let n = 0;
    for (const ring of this.rings) {
      const owner = ring.ownerOfHash(hash);
      if (owner === undefined) continue;
      n = this.addOther(out, n, owner);
      if (this.isMember(owner)) continue;
      const count = ring.ownersIntoHash(hash, copies, scratch);
      for (let i = 1; i < count; i++) n = this.addOther(out, n, scratch[i]!);
    }
    if (current.ownersIntoHash(hash, 2, scratch) === 2) n = this.addOther(out, n, scratch[1]!);
    return n;
  }

  /** Every holder of the key (owner or one of copies − 1 replicas) on an earlier ring, into `out` (never this node); returns how many. */
  holdersInto(hash: number, copies: number, out: string[], scratch: string[]): number {
    let n = 0;
    for (const ring of this.rings) {
      const count = ring.ownersIntoHash(hash, copies, scratch);
      for (let i = 0; i < count; i++) n = this.addOther(out, n, scratch[i]!);
    }
    return n;
  }

  /** Appends `nodeId` to out[0..n) unless it is this node or already there; returns the new length. */
  private addOther(out: string[], n: number, nodeId: string): number {
    if (nodeId === this.selfId) return n;
    for (let i = 0; i < n; i++) if (out[i] === nodeId) return n;
    out[n] = nodeId;
    return n + 1;
  }

  /** Every node id on some earlier ring, into `into`. */
  membersInto(into: Set<string>): void {
    for (const ring of this.rings) for (const m of ring.members) into.add(m.nodeId);
  }
}
