import { sourceKey } from './address.js';
import type { Awareness } from './awareness.js';
import type { Candidate, CandidateArea } from './candidates.js';
import type { SwimLimits, SwimTimings } from './defaults.js';
import type { MembershipEmitter } from './emitter.js';
import { compareVersions, toMember, type Applied, type MemberEntry, type MemberTable } from './member-table.js';
import type { AccusationUpdate, AliveUpdate, MemberRecord, Message, Update } from './messages.js';
import { sameMeta } from './meta.js';
import { suspicionBoundsMs } from './scaling.js';
import type { Scheduler } from './scheduler.js';
import type { SwimStats } from './stats.js';
import { Suspicion } from './suspicion.js';
import { isLive } from './types.js';

/** What applying news needs from the membership around it. */
export interface MemberNewsComponents {
  /** Our own entry: refutations change its generation and incarnation. */
  readonly me: MemberEntry;
  readonly table: MemberTable;
  readonly counters: SwimStats;
  readonly emitter: MembershipEmitter;
  readonly awareness: Awareness;
  readonly scheduler: Scheduler;
  readonly timings: SwimTimings;
  readonly limits: SwimLimits;
  /** Without a cluster key, where new members nobody we trust told us of wait to be confirmed; with one, undefined. */
  readonly candidates: CandidateArea | undefined;
  /** Pings a candidate once (ProbeCycle.confirm). */
  confirm(target: string, targetAddress: string, done: (answered: boolean) => void): void;
  isRunning(): boolean;
  /** After our leave is announced we refute nothing (a newer alive would bring us back). */
  isLeaving(): boolean;
  send(message: Message, address: string, toId: string | undefined): void;
  queueBroadcast(u: Update): void;
  randomAlive(count: number, excludeId?: string): MemberEntry[];
  /** Probe `nodeId` soon: another member suspects it, and our own verdict should follow quickly. */
  probeSoon(nodeId: string): void;
  /** Runs protocol code that must never take the process down. */
  guard(fn: () => void): void;
  /** Sends queued news now rather than at the next gossip round. */
  gossipNow(): void;
  /** Our current record, as we gossip it. */
  selfAlive(): AliveUpdate;
}

/**
 * What news about members does to this node's view: the merge (through MemberTable), the
 * plausibility bounds on generations and incarnations, refuting what is said of ourselves
 * (a member can always refute, if need be with a new generation), suspicions and their
 * timers, and the membership events.
 */
export class MemberNews {
  private readonly suspicions = new Map<string, Suspicion>();

  constructor(private readonly components: MemberNewsComponents) {}

  /** `fromId`: the packet's sender. What it says of itself, from its own address, is never capped as its source's teaching. */
  applyUpdates(updates: readonly Update[], source: string, fromId: string): void {
    for (const u of updates) this.applyHeard(u, fromId, source);
  }

  /**
   * `source`: who told us (sourceKey of the packet; '' for our own verdicts and what a member
   * says of itself). `spokeFrom`: set when `u` is its sender's own word from its own address
   * (that address's sourceKey).
   */
  applyUpdate(u: Update, source = '', spokeFrom?: string): void {
    const { table, scheduler, me, emitter, candidates } = this.components;
    if (this.implausible(u)) return;
    if (u.nodeId === me.nodeId) return this.aboutSelf(u);
    const now = scheduler.clock.now();
    switch (u.kind) {
      case 'alive': {
        // Without a key, a new member only a member vouches for joins the table at once; one
        // that introduced itself, or a stranger told of, waits as a candidate for its ack.
        const vouched = spokeFrom === undefined && (source === '' || table.isMemberSource(source));
        if (candidates !== undefined && !vouched && table.get(u.nodeId) === undefined) return this.heardOfCandidate(u, spokeFrom ?? source, spokeFrom !== undefined);
        const applied = table.applyAlive(u, now, source);
        if (applied === undefined) return;
        candidates?.take(u.nodeId);
        this.endSuspicion(u.nodeId);
        this.announce(applied, u);
        // A new member's news, told us while it was a stranger, is a member's now.
        if (candidates !== undefined && applied.event === 'join') {
          const at = sourceKey(applied.entry.address);
          for (const told of candidates.takeToldBy(at)) this.applyUpdate(told.record, at);
        }
        return;
      }
      case 'suspect': {
        const result = table.applySuspect(u, now);
        if (result === undefined) return;
        if (result.kind === 'suspected') {
          this.startSuspicion(result.entry, u.from);
          if (u.from === me.nodeId) this.tellSuspect(result.entry, u);
          else this.components.probeSoon(u.nodeId); // our own verdict, quickly
          this.components.queueBroadcast(u);
          return emitter.emit('update', toMember(result.entry));
        }
        if (this.suspicions.get(u.nodeId)?.confirm(u.from) === true) this.components.queueBroadcast(u);
        return;
      }
      case 'dead': {
        const applied = table.applyDead(u, now);
        if (applied === undefined) return;
        this.endSuspicion(u.nodeId);
        return this.announce(applied, u);
      }
      case 'left': {
        const applied = table.applyLeft(u, now);
        if (applied === undefined) return;
        this.endSuspicion(u.nodeId);
        return this.announce(applied, u);
      }
    }
  }

  /** A peer's full state (a push-pull or a join's): every record as the news it amounts to. */
  mergeState(records: readonly MemberRecord[], sender: string, source: string): void {
    for (const r of records) {
      const alive: AliveUpdate = {
        kind: 'alive',
        nodeId: r.nodeId,
        generation: r.generation,
        incarnation: r.incarnation,
        address: r.address,
        meta: r.meta,
      };
      if (r.state === 'alive') {
        this.applyHeard(alive, sender, source);
      } else if (r.state === 'left') {
        this.applyUpdate({ kind: 'left', nodeId: r.nodeId, generation: r.generation, incarnation: r.incarnation }, source);
      } else {
        // Suspect and dead records become suspicions here (as memberlist does): the subject can
        // still refute, and our own probes decide. Unknown members are learned only when live.
        if (r.state === 'suspect' || r.nodeId === this.components.me.nodeId) this.applyUpdate(alive, source);
        this.applyUpdate({ kind: 'suspect', nodeId: r.nodeId, generation: r.generation, incarnation: r.incarnation, from: sender }, source);
      }
    }
  }

  /** A seed we asked answered from the address we asked: take its own record first, proven, so what it teaches is not capped. */
  proveSeed(records: readonly MemberRecord[], seedId: string, fromAddress: string): void {
    const own = records.find((r) => r.nodeId === seedId && r.address === fromAddress && r.state === 'alive');
    if (own === undefined) return;
    this.applyUpdate({ kind: 'alive', nodeId: own.nodeId, generation: own.generation, incarnation: own.incarnation, address: own.address, meta: own.meta });
    if (this.components.table.get(seedId)?.address === fromAddress) this.components.table.markProven(seedId);
  }

  /** The accusation of `entry`'s current version, by `from`. */
  accusation(kind: 'suspect' | 'dead', entry: MemberEntry, from: string): AccusationUpdate {
    return { kind, nodeId: entry.nodeId, generation: entry.generation, incarnation: entry.incarnation, from };
  }

  /**
   * Each gossip round: candidates past candidateTtlMs are forgotten, and up to gossipFanout
   * waiting for a ping are pinged (a bound on the pings to addresses only a stranger named).
   */
  tickCandidates(): void {
    const { candidates, scheduler, timings } = this.components;
    if (candidates === undefined) return;
    candidates.expire(scheduler.clock.now());
    for (let i = 0; i < timings.gossipFanout; i++) {
      const next = candidates.nextToPing();
      if (next === undefined) return;
      this.pingCandidate(next);
    }
  }

  /** Cancels every suspicion timer (at stop). */
  close(): void {
    for (const s of this.suspicions.values()) s.cancel();
    this.suspicions.clear();
  }

  /** What `fromId`'s packet from `source` said: of itself, from its own address, it is never capped as its source's teaching. */
  private applyHeard(u: Update, fromId: string, source: string): void {
    if (selfIntroduction(u, fromId, source)) this.applyUpdate(u, '', source);
    else this.applyUpdate(u, source);
  }

  /** A new member nobody we trust told us of: held as a candidate; one that introduced itself is pinged at once (the ping goes back where its packet came from). */
  private heardOfCandidate(u: AliveUpdate, source: string, spoke: boolean): void {
    const { candidates, scheduler } = this.components;
    const candidate = candidates?.offer(u, source, spoke, scheduler.clock.now());
    if (candidate !== undefined && spoke && candidates?.pingable(candidate) === true) this.pingCandidate(candidate);
  }

  private pingCandidate(candidate: Candidate): void {
    candidate.pings++;
    candidate.awaiting = true;
    const pinged = candidate.record;
    this.components.confirm(pinged.nodeId, pinged.address, (answered) => {
      const { candidates, table, counters } = this.components;
      if (!answered) return candidates?.fail(candidate);
      // It answered from the address we pinged: a member, proven by that ack.
      const record = candidate.record.address === pinged.address ? candidate.record : pinged;
      if (candidates?.get(record.nodeId) === candidate) candidates.take(record.nodeId);
      counters.candidatesConfirmed++;
      this.applyUpdate(record);
      if (table.get(record.nodeId)?.address === record.address) table.markProven(record.nodeId);
    });
  }

  private announce(applied: Applied, u: Update): void {
    const { emitter } = this.components;
    this.components.queueBroadcast(u);
    if (applied.evicted !== undefined) {
      // Dropped for room, never proven: gone from our view, as a failure is (not gossiped: others judge for themselves).
      this.endSuspicion(applied.evicted.nodeId);
      emitter.emit('fail', toMember(applied.evicted));
    }
    if (applied.event !== undefined) emitter.emit(applied.event, toMember(applied.entry));
  }

  // ---- plausibility and refutation ---------------------------------------------------------

  /**
   * Whether `u` cannot be true, and is dropped (counted): a generation further ahead of our
   * clock than maxGenerationAheadMs, or — for a live member of the generation we know — an
   * incarnation more than maxIncarnationJump above the one we hold. News of ourselves is
   * judged by aboutSelf, which can always refute it.
   */
  private implausible(u: Update): boolean {
    const { counters, limits, scheduler, table, me } = this.components;
    if (u.generation > scheduler.clock.now() + limits.maxGenerationAheadMs) {
      counters.implausibleGenerations++;
      return true;
    }
    if (u.nodeId === me.nodeId) return false;
    const known = table.get(u.nodeId);
    if (known !== undefined && isLive(known.state) && known.generation === u.generation && u.incarnation - known.incarnation > limits.maxIncarnationJump) {
      counters.implausibleIncarnations++;
      return true;
    }
    return false;
  }

  /** News about ourselves: refute anything that is not our current truth. */
  private aboutSelf(u: Update): void {
    const { me } = this.components;
    if (this.components.isLeaving()) return;
    if (u.generation > me.generation) {
      // An earlier boot of ours looked newer (clock went back): move past it.
      me.generation = u.generation + 1;
      me.incarnation = 0;
      return this.refute(u);
    }
    if (u.generation < me.generation) return; // about a previous boot of ours
    if (u.kind === 'alive') {
      const differs = u.address !== me.address || !sameMeta(u.meta, me.meta);
      if (u.incarnation > me.incarnation || (u.incarnation === me.incarnation && differs)) this.refuteAbove(u);
      return;
    }
    if (u.incarnation < me.incarnation) return;
    this.refuteAbove(u);
  }

  /**
   * Refute `u` with the next incarnation — unless that would be implausible to the members
   * that know us (a jump past maxIncarnationJump) or unsafe (past 2^53 − 1): then with a new
   * generation, which outranks every incarnation of this one. A member can always refute.
   */
  private refuteAbove(u: Update): void {
    const { me, limits, scheduler, counters } = this.components;
    const next = u.incarnation + 1;
    if (Number.isSafeInteger(next) && next - me.incarnation <= limits.maxIncarnationJump) {
      me.incarnation = next;
    } else {
      me.generation = Math.max(me.generation + 1, Math.floor(scheduler.clock.now()));
      me.incarnation = 0;
      counters.generationRefutations++;
    }
    this.refute(u);
  }

  private refute(u: Update): void {
    const { counters, awareness, table, me, timings } = this.components;
    counters.refutations++;
    awareness.apply(1);
    const alive = this.components.selfAlive();
    this.components.queueBroadcast(alive);
    // Tell the accuser directly too, and a few others at once: suspicion timers are short on
    // a LAN, and this starts the refutation's spread a gossip round or two earlier.
    const accuser = u.kind === 'suspect' || u.kind === 'dead' ? table.get(u.from) : undefined;
    if (accuser !== undefined && isLive(accuser.state)) {
      this.components.send({ type: 'gossip', from: me.nodeId, updates: [alive] }, accuser.address, accuser.nodeId);
    }
    for (const peer of this.components.randomAlive(2 * timings.gossipFanout, accuser?.nodeId)) {
      this.components.send({ type: 'gossip', from: me.nodeId, updates: [alive] }, peer.address, peer.nodeId);
    }
  }

  // ---- suspicion ---------------------------------------------------------------------------

  private startSuspicion(entry: MemberEntry, accuser: string): void {
    const { table, timings, scheduler, me } = this.components;
    this.endSuspicion(entry.nodeId);
    const members = table.liveCount + 1;
    const { minMs, maxMs } = suspicionBoundsMs(members, timings.suspicionMinMs, timings.suspicionMaxMultiplier);
    const k = Math.min(timings.suspicionConfirmations, Math.max(0, members - 2));
    const { generation, incarnation } = entry;
    const suspicion = new Suspicion(scheduler, accuser, k, minMs, maxMs, () => {
      this.suspicions.delete(entry.nodeId);
      if (!this.components.isRunning()) return;
      const cur = table.get(entry.nodeId);
      if (cur === undefined || cur.state !== 'suspect' || compareVersions(cur, { generation, incarnation }) > 0) return;
      this.components.guard(() => {
        this.applyUpdate(this.accusation('dead', cur, me.nodeId));
        this.components.gossipNow(); // a verdict is worth spreading now, not at the next tick
      });
    });
    this.suspicions.set(entry.nodeId, suspicion);
  }

  private endSuspicion(nodeId: string): void {
    this.suspicions.get(nodeId)?.cancel();
    this.suspicions.delete(nodeId);
  }

  /** Our own fresh suspicion goes straight to the suspect so it can refute in one hop. */
  private tellSuspect(entry: MemberEntry, u: AccusationUpdate): void {
    this.components.send({ type: 'gossip', from: this.components.me.nodeId, updates: [u] }, entry.address, entry.nodeId);
  }
}

/**
 * The sender telling of itself from the address it names (loopback sources are host:port):
 * a member can always introduce itself, whatever else its packets carried — a push-pull that
 * relays many unproven members (a flood it learned from a seed) once put the sender's own
 * record past its source's cap, and the new member never appeared.
 */
export function selfIntroduction(u: Update, fromId: string, source: string): boolean {
  return u.kind === 'alive' && u.nodeId === fromId && sourceKey(u.address) === source;
}
