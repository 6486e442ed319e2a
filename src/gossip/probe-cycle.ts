import type { Rng } from '../common/rng.js';
import type { Awareness } from './awareness.js';
import type { SwimLimits, SwimTimings } from './defaults.js';
import type { MemberEntry, MemberTable } from './member-table.js';
import type { Message, Update } from './messages.js';
import { ProbeOrder } from './probe-order.js';
import type { Cancel } from './scheduler.js';
import { countDrop, type SwimStats } from './stats.js';
import { isLive } from './types.js';

interface PendingProbe {
  readonly target: string;
  /** Where the ping went: an ack from that member at that address proves it (MemberTable.markProven). */
  readonly targetAddress: string;
  acked: boolean;
  nacks: number;
  expectedNacks: number;
  cancel: Cancel;
}

interface Relay {
  readonly requesterAddress: string;
  readonly requesterId: string;
  readonly requesterSeq: number;
  cancel: Cancel;
}

/** A ping to a candidate (candidates.ts): an ack from it, at that address, confirms it. */
interface Confirmation {
  readonly target: string;
  readonly targetAddress: string;
  readonly done: (answered: boolean) => void;
  cancel: Cancel;
}

type Piggybacked = Extract<Message, { updates: readonly Update[] }>;

/** Members waiting to be probed first because they spoke to us unproven. */
const PROVE_SOON_MAX = 16;

/** What the probe cycle needs from the membership around it. */
export interface ProbeCycleComponents {
  selfId: string;
  table: MemberTable;
  awareness: Awareness;
  counters: SwimStats;
  rng: Rng;
  /** `toId`: the member it is for (a signed packet is bound to it). */
  send(message: Message, address: string, toId: string): void;
  /** Sends with queued updates piggybacked; `first` goes first (a buddy accusation). */
  sendWithPiggyback(message: Piggybacked, address: string, toId: string, first?: Update): void;
  /** A timer that fires after already-received packets are handled (see SwimMembership.deadline). */
  deadline(delayMs: number, fn: () => void): Cancel;
  randomAlive(count: number, excludeId?: string): MemberEntry[];
  /** A live member missed its probe and every indirect one: suspect it. */
  suspect(target: MemberEntry): void;
  /** The suspicion of `target` to send it along (the buddy system). */
  buddyAccusation(target: MemberEntry): Update;
}

/**
 * SWIM's failure detector, both ends: each round probes the next member in a shuffled
 * round-robin; a missed ack asks `indirectChecks` members to ping-req it; no ack by the end of
 * the round raises a suspicion (Lifeguard: relays that did not even nack count against our own
 * health). It also answers pings, relays ping-reqs and nacks a relayed probe that timed out.
 */
export class ProbeCycle {
  private readonly probes = new Map<number, PendingProbe>();
  private readonly relays = new Map<number, Relay>();
  /** Pings to candidates, oldest first (bounded: maxPendingProbes). */
  private readonly confirming = new Map<number, Confirmation>();
  private readonly order: ProbeOrder;
  /** Members put first in line to be proven (bounded: PROVE_SOON_MAX). */
  private readonly proving = new Set<string>();
  private seq: number;

  /** `firstSeq`: where probe sequence numbers start (random, so a restart's acks are not taken for old ones). */
  constructor(
    private readonly components: ProbeCycleComponents,
    private readonly timings: SwimTimings,
    private readonly limits: SwimLimits,
    firstSeq: number,
  ) {
    this.order = new ProbeOrder(components.rng);
    this.seq = firstSeq;
  }

  /** The time to the next probe round (awareness stretches it when this node is unhealthy). */
  intervalMs(): number {
    return this.components.awareness.scale(this.timings.probeIntervalMs);
  }

  /** Probes `nodeId` soon: another member suspects it, and our own verdict should follow quickly. */
  soon(nodeId: string): void {
    this.order.soon(nodeId);
  }

  /**
   * `nodeId` spoke to us from the address we know it at but never answered a probe of ours:
   * probe it next, so that a real member is proven (MemberTable.markProven) within a round or
   * two even when the table is full of invented members. At most PROVE_SOON_MAX wait.
   */
  proveSoon(nodeId: string): void {
    if (this.proving.has(nodeId) || this.proving.size >= PROVE_SOON_MAX) return;
    this.proving.add(nodeId);
    this.order.soon(nodeId);
  }

  /** One probe round. */
  probeNext(): void {
    const { table, awareness, counters } = this.components;
    const id = this.order.next(
      () => table.live().map((e) => e.nodeId),
      (candidate) => isLive(table.get(candidate)?.state ?? 'dead'),
    );
    if (id !== undefined) this.proving.delete(id);
    const target = id === undefined ? undefined : table.get(id);
    if (target === undefined || this.probes.size >= this.limits.maxPendingProbes) return;
    const seq = this.nextSeq();
    const probe: PendingProbe = { target: target.nodeId, targetAddress: target.address, acked: false, nacks: 0, expectedNacks: 0, cancel: () => {} };
    this.probes.set(seq, probe);
    counters.probes++;
    // Buddy system: a suspect learns of its suspicion from the very probes aimed at it.
    const buddy = target.state === 'suspect' ? this.components.buddyAccusation(target) : undefined;
    this.components.sendWithPiggyback({ type: 'ping', from: this.components.selfId, seq, target: target.nodeId, updates: [] }, target.address, target.nodeId, buddy);
    const intervalMs = awareness.scale(this.timings.probeIntervalMs);
    const timeoutMs = awareness.scale(this.timings.probeTimeoutMs);
    probe.cancel = this.components.deadline(timeoutMs, () => {
      if (probe.acked) return this.finish(seq);
      this.askIndirect(seq, probe, target);
      probe.cancel = this.components.deadline(Math.max(1, intervalMs - timeoutMs), () => this.finish(seq));
    });
  }

  /**
   * One ping to a candidate, not a member (no indirect probes, no suspicion, no effect on our
   * health): `done(true)` when it acks from `targetAddress`, `done(false)` when no ack came
   * within a probe interval. At most maxPendingProbes wait; past that the oldest is given up,
   * so a flood of self-introductions cannot keep a newcomer's ping from going out.
   */
  confirm(target: string, targetAddress: string, done: (answered: boolean) => void): void {
    if (this.confirming.size >= this.limits.maxPendingProbes) {
      const oldest = this.confirming.entries().next().value;
      if (oldest !== undefined) {
        this.confirming.delete(oldest[0]);
        oldest[1].cancel();
        oldest[1].done(false);
      }
    }
    const seq = this.nextSeq();
    const confirmation: Confirmation = { target, targetAddress, done, cancel: () => {} };
    this.confirming.set(seq, confirmation);
    this.components.counters.candidatePings++;
    this.components.send({ type: 'ping', from: this.components.selfId, seq, target, updates: [] }, targetAddress, target);
    confirmation.cancel = this.components.deadline(this.components.awareness.scale(this.timings.probeIntervalMs), () => {
      if (this.confirming.delete(seq)) done(false);
    });
  }

  /** A ping for us: ack it to the datagram's source, never to an address the packet claims. */
  onPing(seq: number, fromAddress: string, fromId: string): void {
    this.components.sendWithPiggyback({ type: 'ack', from: this.components.selfId, seq, updates: [] }, fromAddress, fromId);
  }

  /** An ack from `fromId` at `fromAddress`: straight from the member we pinged there proves it; a relayed one does not. */
  onAck(seq: number, fromId: string, fromAddress: string): void {
    const probe = this.probes.get(seq);
    if (probe !== undefined) {
      probe.acked = true;
      if (fromId === probe.target && fromAddress === probe.targetAddress) this.components.table.markProven(fromId);
      return;
    }
    const confirmation = this.confirming.get(seq);
    if (confirmation !== undefined) {
      if (fromId !== confirmation.target || fromAddress !== confirmation.targetAddress) return;
      this.confirming.delete(seq);
      confirmation.cancel();
      confirmation.done(true);
      return;
    }
    const relay = this.relays.get(seq);
    if (relay !== undefined) {
      this.relays.delete(seq);
      relay.cancel();
      this.components.send({ type: 'ack', from: this.components.selfId, seq: relay.requesterSeq, updates: [] }, relay.requesterAddress, relay.requesterId);
      return;
    }
    this.components.counters.lateReplies++; // after the probe was judged: normal under delay
  }

  onNack(seq: number): void {
    const probe = this.probes.get(seq);
    if (probe === undefined) return void this.components.counters.lateReplies++;
    probe.nacks++;
  }

  /** Ping-req is the one message whose target address comes from the packet: only known members qualify. */
  relayPing(requesterSeq: number, targetId: string, targetAddress: string, requesterAddress: string, requesterId: string): void {
    const { table, counters, awareness } = this.components;
    const target = table.get(targetId);
    if (target === undefined || target.address !== targetAddress || !isLive(target.state)) {
      return countDrop(counters, 'pingReqUnknownTarget');
    }
    if (this.relays.size >= this.limits.maxPendingProbes) return countDrop(counters, 'relayQueueFull');
    const seq = this.nextSeq();
    const relay: Relay = { requesterAddress, requesterId, requesterSeq, cancel: () => {} };
    this.relays.set(seq, relay);
    this.components.send({ type: 'ping', from: this.components.selfId, seq, target: targetId, updates: [] }, targetAddress, targetId);
    relay.cancel = this.components.deadline(awareness.scale(this.timings.probeTimeoutMs), () => {
      if (!this.relays.delete(seq)) return;
      counters.nacksSent++;
      this.components.send({ type: 'nack', from: this.components.selfId, seq: requesterSeq }, requesterAddress, requesterId);
    });
  }

  /** Cancels every pending probe and relay. */
  close(): void {
    for (const p of this.probes.values()) p.cancel();
    this.probes.clear();
    for (const r of this.relays.values()) r.cancel();
    this.relays.clear();
    for (const c of this.confirming.values()) c.cancel();
    this.confirming.clear();
    this.proving.clear();
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    return this.seq;
  }

  private askIndirect(seq: number, probe: PendingProbe, target: MemberEntry): void {
    const helpers = this.components.randomAlive(this.timings.indirectChecks, target.nodeId);
    probe.expectedNacks = helpers.length;
    for (const helper of helpers) {
      this.components.counters.indirectProbes++;
      this.components.sendWithPiggyback(
        { type: 'ping-req', from: this.components.selfId, seq, target: target.nodeId, targetAddress: target.address, updates: [] },
        helper.address,
        helper.nodeId,
      );
    }
  }

  private finish(seq: number): void {
    const probe = this.probes.get(seq);
    if (probe === undefined) return;
    this.probes.delete(seq);
    probe.cancel();
    const { awareness, counters, table } = this.components;
    if (probe.acked) {
      awareness.apply(-1);
      return;
    }
    counters.probesFailed++;
    // Lifeguard: relays that did not even nack suggest the problem is on our side.
    awareness.apply(probe.expectedNacks > 0 ? probe.expectedNacks - probe.nacks : 1);
    const target = table.get(probe.target);
    if (target === undefined || !isLive(target.state)) return;
    counters.suspicionsRaised++;
    this.components.suspect(target);
  }
}
