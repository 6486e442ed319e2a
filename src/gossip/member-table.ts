import { sourceKey } from './address.js';
import { idHash } from './digest.js';
import { sameMeta } from './meta.js';
import type { AccusationUpdate, AliveUpdate, LeftUpdate, MemberRecord } from './messages.js';
import { isLive, type Member, type MemberState, type Meta } from './types.js';

export interface MemberEntry {
  nodeId: string;
  address: string;
  generation: number;
  incarnation: number;
  meta: Meta;
  state: MemberState;
  /** When `state` last changed, for tombstone expiry. */
  stateSinceMs: number;
  /** Hash of nodeId, for the state digest (digest.ts). */
  readonly idHash: number;
  /** Position in the table's live list, -1 when not live: the table's own bookkeeping. */
  liveIndex: number;
  /** Whether it answered one of our own probes directly (an ack from it), at its current address. */
  proven: boolean;
  /** Who taught us of it while unproven (sourceKey of the packet); '' once proven. */
  source: string;
  /** Position in the table's list of proven live members, -1 when not in it. */
  provenIndex: number;
}

/**
 * One shared, flat copy of a string kept for long. V8 interns property names in a weak,
 * process-wide table: a decoded id or address stored this way does not pin the packet text
 * it was sliced from, and the simulator's thousands of tables share one copy.
 */
function intern(text: string): string {
  const holder: Record<string, 0> = { [text]: 0 };
  for (const key in holder) return key;
  return text;
}

/** A new entry; every field set here, in one order, so that all entries share one shape. */
export function newEntry(
  fields: { nodeId: string; address: string; generation: number; incarnation: number; meta: Meta },
  state: MemberState,
  nowMs: number,
): MemberEntry {
  return {
    nodeId: intern(fields.nodeId),
    address: intern(fields.address),
    generation: fields.generation,
    incarnation: fields.incarnation,
    meta: fields.meta,
    state,
    stateSinceMs: nowMs,
    idHash: idHash(fields.nodeId),
    liveIndex: -1,
    proven: false,
    source: '',
    provenIndex: -1,
  };
}

export type MembershipEvent = 'join' | 'update' | 'leave' | 'fail';

/** What applying an update did: the event to emit (if any); the update is news worth re-gossiping. */
export interface Applied {
  readonly entry: MemberEntry;
  readonly event: MembershipEvent | undefined;
  /** A live member dropped to make room (never proven, from the source that taught us most such): report it gone. */
  readonly evicted?: MemberEntry;
}

/** Orders two (generation, incarnation) versions: positive when a is newer. */
export function compareVersions(a: { generation: number; incarnation: number }, b: { generation: number; incarnation: number }): number {
  return a.generation - b.generation || a.incarnation - b.incarnation;
}

export function toMember(e: MemberEntry): Member {
  return Object.freeze({
    nodeId: e.nodeId,
    address: e.address,
    generation: e.generation,
    incarnation: e.incarnation,
    meta: e.meta,
    state: e.state,
  });
}

export function toRecord(e: MemberEntry): MemberRecord {
  return { nodeId: e.nodeId, address: e.address, generation: e.generation, incarnation: e.incarnation, state: e.state, meta: e.meta };
}

/**
 * SWIM merge rules over everyone but self (self is refuted, not merged: see member-news.ts).
 * Pure: no I/O, no timers.
 */
export class MemberTable {
  private readonly entries = new Map<string, MemberEntry>();
  /** Live entries (alive or suspect), in no order, kept as states change: O(1) count and random picks. */
  private readonly liveList: MemberEntry[] = [];
  /** Entries suspected now. */
  readonly suspects = new Set<MemberEntry>();
  /** Failed or left entries, remembered until prune() forgets them. */
  private readonly tombstones = new Set<MemberEntry>();
  /** Unproven entries by the source that taught us of them, oldest first: whom to drop when full. */
  private readonly unprovenBySource = new Map<string, Set<MemberEntry>>();
  /** Proven live entries (a direct ack from each): gossip always reaches one of them. */
  private readonly provenList: MemberEntry[] = [];
  /** Proven entries by the sourceKey of their address: what they teach is not capped. */
  private readonly provenSources = new Map<string, number>();
  /** Live entries by the sourceKey of their address: whose news of new members is a member's (isMemberSource). */
  private readonly liveSources = new Map<string, number>();
  rejectedFull = 0;
  evictedUnproven = 0;
  rejectedSource = 0;

  /**
   * `maxUnprovenPerSource`: members never proven that one source which is not itself a proven
   * member may have taught us; more from it are dropped (counted in rejectedSource).
   */
  constructor(
    private readonly maxMembers: number,
    private readonly maxUnprovenPerSource: number = Number.POSITIVE_INFINITY,
  ) {}

  get(nodeId: string): MemberEntry | undefined {
    return this.entries.get(nodeId);
  }

  all(): MemberEntry[] {
    return [...this.entries.values()];
  }

  live(): MemberEntry[] {
    return this.liveList.slice();
  }

  /** The live entries without a copy: read, never keep or change. */
  liveView(): readonly MemberEntry[] {
    return this.liveList;
  }

  get liveCount(): number {
    return this.liveList.length;
  }

  /** The live entry at `index` (0 ≤ index < liveCount), for random picks; the order changes as members come and go. */
  liveAtIndex(index: number): MemberEntry | undefined {
    return this.liveList[index];
  }

  /** Sets an entry's state, keeping the live list and the suspects in step. */
  private setState(entry: MemberEntry, state: MemberState): void {
    const wasLive = entry.liveIndex >= 0;
    entry.state = state;
    if (state === 'suspect') this.suspects.add(entry);
    else this.suspects.delete(entry);
    const live = isLive(state);
    if (live) this.tombstones.delete(entry);
    else this.tombstones.add(entry);
    if (live && !wasLive) {
      entry.liveIndex = this.liveList.length;
      this.liveList.push(entry);
      countSource(this.liveSources, entry.address, 1);
    } else if (!live && wasLive) this.removeLive(entry);
    this.syncProvenList(entry);
  }

  get provenCount(): number {
    return this.provenList.length;
  }

  /** A proven live member at random (rng: an integer below its argument), if any. */
  randomProven(randomInt: (below: number) => number, excludeId?: string): MemberEntry | undefined {
    const n = this.provenList.length;
    if (n === 0) return undefined;
    const at = randomInt(n);
    const pick = this.provenList[at];
    if (pick?.nodeId !== excludeId) return pick;
    return n > 1 ? this.provenList[(at + 1) % n] : undefined;
  }

  private syncProvenList(entry: MemberEntry): void {
    const belongs = entry.proven && entry.liveIndex >= 0;
    if (belongs && entry.provenIndex < 0) {
      entry.provenIndex = this.provenList.length;
      this.provenList.push(entry);
    } else if (!belongs && entry.provenIndex >= 0) {
      const at = entry.provenIndex;
      const last = this.provenList.pop()!;
      if (last !== entry) {
        this.provenList[at] = last;
        last.provenIndex = at;
      }
      entry.provenIndex = -1;
    }
  }

  private unprove(entry: MemberEntry): void {
    if (!entry.proven) return;
    entry.proven = false;
    this.syncProvenList(entry);
    const key = sourceKey(entry.address);
    const left = (this.provenSources.get(key) ?? 1) - 1;
    if (left <= 0) this.provenSources.delete(key);
    else this.provenSources.set(key, left);
  }

  private removeLive(entry: MemberEntry): void {
    const at = entry.liveIndex;
    if (at < 0) return;
    countSource(this.liveSources, entry.address, -1);
    const last = this.liveList.pop()!;
    if (last !== entry) {
      this.liveList[at] = last;
      last.liveIndex = at;
    }
    entry.liveIndex = -1;
  }

  /**
   * Alive wins only with a strictly newer version; a new generation is a restarted node.
   * `source` names who told us (sourceKey of the packet): when the table is full, a newcomer
   * takes the place of a forgotten member's tombstone, else of a member never proven by a
   * direct ack whose source taught us more such members than the newcomer's did (the oldest
   * of them) — so a flood of invented members from one source displaces only its own.
   */
  applyAlive(u: AliveUpdate, nowMs: number, source = ''): Applied | undefined {
    const cur = this.entries.get(u.nodeId);
    if (cur === undefined) {
      if (source !== '' && !this.provenSources.has(source) && this.unprovenCount(source) >= this.maxUnprovenPerSource) {
        this.rejectedSource++;
        return undefined;
      }
      let evicted: MemberEntry | undefined;
      if (this.entries.size >= this.maxMembers) {
        const room = this.makeRoom(source);
        if (room === false) {
          this.rejectedFull++;
          return undefined;
        }
        evicted = room;
      }
      const entry = newEntry(u, 'dead', nowMs);
      this.entries.set(u.nodeId, entry);
      this.setState(entry, 'alive');
      this.trackUnproven(entry, source);
      return evicted === undefined ? { entry, event: 'join' } : { entry, event: 'join', evicted };
    }
    if (compareVersions(u, cur) <= 0) return undefined;
    if (cur.address !== u.address && cur.proven) {
      // Proven at another address: not here yet.
      this.unprove(cur);
      this.trackUnproven(cur, source);
    }
    const wasLive = isLive(cur.state);
    const previousGeneration = cur.generation;
    const visibleChange =
      cur.state !== 'alive' || cur.address !== u.address || cur.generation !== u.generation || !sameMeta(cur.meta, u.meta);
    if (cur.state !== 'alive') cur.stateSinceMs = nowMs;
    // Keep the strings and maps we hold when they are unchanged: thousands of entries, one copy each.
    if (cur.address !== u.address) {
      if (cur.liveIndex >= 0) countSource(this.liveSources, cur.address, -1);
      cur.address = intern(u.address);
      if (cur.liveIndex >= 0) countSource(this.liveSources, cur.address, 1);
    }
    if (!sameMeta(cur.meta, u.meta)) cur.meta = u.meta;
    cur.generation = u.generation;
    cur.incarnation = u.incarnation;
    this.setState(cur, 'alive');
    // A new generation is a new process (its in-memory state is gone): report it as a join.
    const restarted = u.generation !== previousGeneration;
    return { entry: cur, event: !wasLive || restarted ? 'join' : visibleChange ? 'update' : undefined };
  }

  /**
   * 'suspected' when a live member just became suspect, 'confirmation' when it already was
   * (the caller counts the accuser), undefined when the accusation is stale or moot.
   */
  applySuspect(u: AccusationUpdate, nowMs: number): { kind: 'suspected' | 'confirmation'; entry: MemberEntry } | undefined {
    const cur = this.current(u);
    if (cur === undefined || !isLive(cur.state)) return undefined;
    if (cur.state === 'suspect') {
      cur.incarnation = u.incarnation;
      return { kind: 'confirmation', entry: cur };
    }
    Object.assign(cur, { incarnation: u.incarnation, stateSinceMs: nowMs });
    this.setState(cur, 'suspect');
    return { kind: 'suspected', entry: cur };
  }

  applyDead(u: AccusationUpdate, nowMs: number): Applied | undefined {
    const cur = this.current(u);
    if (cur === undefined || !isLive(cur.state)) return undefined;
    Object.assign(cur, { incarnation: u.incarnation, stateSinceMs: nowMs });
    this.setState(cur, 'dead');
    return { entry: cur, event: 'fail' };
  }

  applyLeft(u: LeftUpdate, nowMs: number): Applied | undefined {
    const cur = this.current(u);
    if (cur === undefined || cur.state === 'left') return undefined;
    const wasLive = isLive(cur.state);
    Object.assign(cur, { incarnation: u.incarnation, stateSinceMs: nowMs });
    this.setState(cur, 'left');
    return { entry: cur, event: wasLive ? 'leave' : undefined };
  }

  /** Forget failed/left members older than `retentionMs`; returns how many. */
  prune(nowMs: number, retentionMs: number): number {
    let removed = 0;
    for (const e of this.tombstones) {
      if (nowMs - e.stateSinceMs >= retentionMs) {
        this.remove(e);
        removed++;
      }
    }
    return removed;
  }

  /** `nodeId` answered our own probe directly: it holds its slot against newcomers from now on. */
  markProven(nodeId: string): void {
    const entry = this.entries.get(nodeId);
    if (entry === undefined || entry.proven) return;
    this.untrackUnproven(entry);
    entry.proven = true;
    this.syncProvenList(entry);
    const key = sourceKey(entry.address);
    this.provenSources.set(key, (this.provenSources.get(key) ?? 0) + 1);
  }

  /** Whether `source` (a sourceKey) is the address of a live member or of a proven one: its news of new members is a member's. */
  isMemberSource(source: string): boolean {
    return this.liveSources.has(source) || this.provenSources.has(source);
  }

  /** Unproven members held per source, for tests and stats. */
  unprovenCount(source: string): number {
    return this.unprovenBySource.get(source)?.size ?? 0;
  }

  /**
   * Room for one more: the oldest tombstone, else the oldest unproven live entry of the source
   * holding the most unproven entries, if that is more than `source` holds. The evicted live
   * entry is returned (its state set to dead) so that its departure is reported; false: no room.
   */
  private makeRoom(source: string): MemberEntry | undefined | false {
    const tombstone = this.tombstones.values().next().value;
    if (tombstone !== undefined) {
      this.remove(tombstone);
      return undefined;
    }
    let worst: Set<MemberEntry> | undefined;
    for (const set of this.unprovenBySource.values()) if (worst === undefined || set.size > worst.size) worst = set;
    const victim = worst?.values().next().value;
    if (worst === undefined || victim === undefined || worst.size <= this.unprovenCount(source)) return false;
    this.remove(victim);
    victim.state = 'dead';
    this.evictedUnproven++;
    return victim;
  }

  private remove(entry: MemberEntry): void {
    this.unprove(entry);
    this.removeLive(entry);
    this.suspects.delete(entry);
    this.tombstones.delete(entry);
    this.untrackUnproven(entry);
    this.entries.delete(entry.nodeId);
  }

  private trackUnproven(entry: MemberEntry, source: string): void {
    this.untrackUnproven(entry);
    entry.source = intern(source);
    let set = this.unprovenBySource.get(source);
    if (set === undefined) this.unprovenBySource.set(source, (set = new Set()));
    set.add(entry);
  }

  private untrackUnproven(entry: MemberEntry): void {
    const set = this.unprovenBySource.get(entry.source);
    if (set === undefined || !set.delete(entry)) return;
    if (set.size === 0) this.unprovenBySource.delete(entry.source);
    entry.source = '';
  }

  /** Accusations must name the generation we know and at least its incarnation. */
  private current(u: { nodeId: string; generation: number; incarnation: number }): MemberEntry | undefined {
    const cur = this.entries.get(u.nodeId);
    if (cur === undefined || u.generation !== cur.generation || u.incarnation < cur.incarnation) return undefined;
    return cur;
  }
}

/** Adds `delta` to the count of `address`'s sourceKey, dropping it at 0. */
function countSource(counts: Map<string, number>, address: string, delta: number): void {
  const key = sourceKey(address);
  const next = (counts.get(key) ?? 0) + delta;
  if (next <= 0) counts.delete(key);
  else counts.set(key, next);
}
