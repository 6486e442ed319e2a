import { sourceKey } from './address.js';
import { compareVersions } from './member-table.js';
import type { AliveUpdate } from './messages.js';

/** A new member heard of without a cluster key, not confirmed yet. */
export interface Candidate {
  /** The newest version heard. */
  record: AliveUpdate;
  /** Who taught us of it (sourceKey of the packet); for a self-introduction, its own. */
  readonly source: string;
  readonly sinceMs: number;
  /** It spoke for itself, from its own address (a self-introduction); else another told of it. */
  spoke: boolean;
  /** sourceKey of its record's address: what it told us of is held under this (takeToldBy). */
  at: string;
  /** Pings sent to it (PINGS_PER_CANDIDATE at most). */
  pings: number;
  /** A ping to it is waiting for its ack. */
  awaiting: boolean;
}

/** Pings a candidate gets before it is forgotten: one lost ping or ack does not cost a real newcomer its place. */
export const PINGS_PER_CANDIDATE = 2;

export interface CandidateLimits {
  /** Candidates held at once. */
  readonly max: number;
  /** Candidates one source may have told us of (self-introductions are not capped, but counted). */
  readonly maxPerSource: number;
  /** A candidate not confirmed within this is forgotten. */
  readonly ttlMs: number;
}

/**
 * The antechamber of the member table when gossip has no cluster key: a member nobody we
 * trust told us of — a stranger's news, or a newcomer introducing itself — waits here, apart
 * from the members, until it answers a ping of ours from its own address. Bounded in all
 * (`max`) and per source (`maxPerSource`); its entries expire (`ttlMs`). A flood of invented
 * members, from however many sources, fills at most this area, never the member table.
 *
 * When full, what another told of is refused; a self-introduction takes the place of the
 * oldest candidate of the source holding the most, if that source holds more than the
 * newcomer's — so a real newcomer, which speaks for itself from an address of its own, always
 * gets in. Pure: no I/O, no timers.
 */
export class CandidateArea {
  /** In arrival order (sinceMs never decreases along it): expiry stops at the first young one. */
  private readonly byId = new Map<string, Candidate>();
  /** By source, oldest first: whom to displace when full. */
  private readonly bySource = new Map<string, Set<Candidate>>();
  /** Refused because the area was full. */
  refusedFull = 0;
  /** Refused because their source already told of maxPerSource. */
  refusedSource = 0;
  /** Dropped for a self-introduction's room. */
  displaced = 0;
  /** Forgotten unconfirmed: their pings went unanswered, or ttlMs passed. */
  expired = 0;

  constructor(private readonly limits: CandidateLimits) {}

  get size(): number {
    return this.byId.size;
  }

  get(nodeId: string): Candidate | undefined {
    return this.byId.get(nodeId);
  }

  /**
   * News of `u`, a member not in the table, from `source` (`spoke`: it introduced itself from
   * its own address). Returns the candidate now held, new or updated, or undefined if refused.
   */
  offer(u: AliveUpdate, source: string, spoke: boolean, nowMs: number): Candidate | undefined {
    const held = this.byId.get(u.nodeId);
    if (held !== undefined) {
      // What it says of itself, from its own address, outranks what others said of it.
      if (spoke ? !held.spoke || compareVersions(u, held.record) > 0 : !held.spoke && compareVersions(u, held.record) > 0) {
        held.record = u;
        held.at = sourceKey(u.address);
      }
      if (spoke) held.spoke = true;
      return held;
    }
    const fromSource = this.bySource.get(source)?.size ?? 0;
    if (!spoke && fromSource >= this.limits.maxPerSource) {
      this.refusedSource++;
      return undefined;
    }
    if (this.byId.size >= this.limits.max && !(spoke && this.displaceFor(fromSource))) {
      this.refusedFull++;
      return undefined;
    }
    const candidate: Candidate = { record: u, source, sinceMs: nowMs, spoke, at: sourceKey(u.address), pings: 0, awaiting: false };
    this.byId.set(u.nodeId, candidate);
    let set = this.bySource.get(source);
    if (set === undefined) this.bySource.set(source, (set = new Set()));
    set.add(candidate);
    return candidate;
  }

  /** Takes `nodeId` out (confirmed, or now a member by trusted news). */
  take(nodeId: string): Candidate | undefined {
    const candidate = this.byId.get(nodeId);
    if (candidate === undefined) return undefined;
    this.byId.delete(nodeId);
    const set = this.bySource.get(candidate.source);
    if (set !== undefined) {
      set.delete(candidate);
      if (set.size === 0) this.bySource.delete(candidate.source);
    }
    return candidate;
  }

  /** Takes out what `source` told of (not those that introduced themselves): `source` is a member now, and its word is a member's. */
  takeToldBy(source: string): Candidate[] {
    const set = this.bySource.get(source);
    if (set === undefined) return [];
    const told = [...set].filter((c) => !c.spoke);
    for (const c of told) this.take(c.record.nodeId);
    return told;
  }

  /** Whether `candidate` may be pinged now. */
  pingable(candidate: Candidate): boolean {
    return !candidate.awaiting && candidate.pings < PINGS_PER_CANDIDATE;
  }

  /** `candidate` did not answer a ping: after PINGS_PER_CANDIDATE, forgotten (unless it was replaced meanwhile). */
  fail(candidate: Candidate): void {
    candidate.awaiting = false;
    if (candidate.pings < PINGS_PER_CANDIDATE || this.byId.get(candidate.record.nodeId) !== candidate) return;
    this.take(candidate.record.nodeId);
    this.expired++;
  }

  /** Forgets candidates older than ttlMs. */
  expire(nowMs: number): void {
    for (const candidate of this.byId.values()) {
      if (nowMs - candidate.sinceMs < this.limits.ttlMs) return;
      this.take(candidate.record.nodeId);
      this.expired++;
    }
  }

  /**
   * The next candidate to ping: one that introduced itself, else the one that told us of the
   * most others (once it answers, they are a member's news: takeToldBy), else the oldest.
   */
  nextToPing(): Candidate | undefined {
    let best: Candidate | undefined;
    let bestTold = -1;
    for (const candidate of this.byId.values()) {
      if (!this.pingable(candidate)) continue;
      if (candidate.spoke) return candidate;
      const told = this.bySource.get(candidate.at)?.size ?? 0;
      if (told > bestTold) {
        best = candidate;
        bestTold = told;
      }
    }
    return best;
  }

  /** Room for a self-introduction whose source holds `fromSource`: the oldest of the source holding most, if it holds more. */
  private displaceFor(fromSource: number): boolean {
    let worst: Set<Candidate> | undefined;
    for (const set of this.bySource.values()) if (worst === undefined || set.size > worst.size) worst = set;
    const victim = worst?.values().next().value;
    if (worst === undefined || victim === undefined || worst.size <= fromSource) return false;
    this.take(victim.record.nodeId);
    this.displaced++;
    return true;
  }
}
