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
}

export type MembershipEvent = 'join' | 'update' | 'leave' | 'fail';

/** What applying an update did: the event to emit (if any); the update is news worth re-gossiping. */
export interface Applied {
  readonly entry: MemberEntry;
  readonly event: MembershipEvent | undefined;
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
 * SWIM merge rules over everyone but self (self is refuted, not merged: see swim.ts).
 * Pure: no I/O, no timers.
 */
export class MemberTable {
  private readonly entries = new Map<string, MemberEntry>();
  rejectedFull = 0;

  constructor(private readonly maxMembers: number) {}

  get(nodeId: string): MemberEntry | undefined {
    return this.entries.get(nodeId);
  }

  all(): MemberEntry[] {
    return [...this.entries.values()];
  }

  live(): MemberEntry[] {
    return this.all().filter((e) => isLive(e.state));
  }

  /** Alive wins only with a strictly newer version; a new generation is a restarted node. */
  applyAlive(u: AliveUpdate, nowMs: number): Applied | undefined {
    const cur = this.entries.get(u.nodeId);
    if (cur === undefined) {
      if (this.entries.size >= this.maxMembers) {
        this.rejectedFull++;
        return undefined;
      }
      const entry: MemberEntry = { ...u, state: 'alive', stateSinceMs: nowMs };
      this.entries.set(u.nodeId, entry);
      return { entry, event: 'join' };
    }
    if (compareVersions(u, cur) <= 0) return undefined;
    const wasLive = isLive(cur.state);
    const previousGeneration = cur.generation;
    const visibleChange =
      cur.state !== 'alive' || cur.address !== u.address || cur.generation !== u.generation || !sameMeta(cur.meta, u.meta);
    if (cur.state !== 'alive') cur.stateSinceMs = nowMs;
    Object.assign(cur, { address: u.address, generation: u.generation, incarnation: u.incarnation, meta: u.meta, state: 'alive' });
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
    Object.assign(cur, { incarnation: u.incarnation, state: 'suspect', stateSinceMs: nowMs });
    return { kind: 'suspected', entry: cur };
  }

  applyDead(u: AccusationUpdate, nowMs: number): Applied | undefined {
    const cur = this.current(u);
    if (cur === undefined || !isLive(cur.state)) return undefined;
    Object.assign(cur, { incarnation: u.incarnation, state: 'dead', stateSinceMs: nowMs });
    return { entry: cur, event: 'fail' };
  }

  applyLeft(u: LeftUpdate, nowMs: number): Applied | undefined {
    const cur = this.current(u);
    if (cur === undefined || cur.state === 'left') return undefined;
    const wasLive = isLive(cur.state);
    Object.assign(cur, { incarnation: u.incarnation, state: 'left', stateSinceMs: nowMs });
    return { entry: cur, event: wasLive ? 'leave' : undefined };
  }

  /** Forget failed/left members older than `retentionMs`; returns how many. */
  prune(nowMs: number, retentionMs: number): number {
    let removed = 0;
    for (const [id, e] of this.entries) {
      if (!isLive(e.state) && nowMs - e.stateSinceMs >= retentionMs) {
        this.entries.delete(id);
        removed++;
      }
    }
    return removed;
  }

  /** Accusations must name the generation we know and at least its incarnation. */
  private current(u: { nodeId: string; generation: number; incarnation: number }): MemberEntry | undefined {
    const cur = this.entries.get(u.nodeId);
    if (cur === undefined || u.generation !== cur.generation || u.incarnation < cur.incarnation) return undefined;
    return cur;
  }
}
