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
  acked: boolean;
  nacks: number;
  expectedNacks: number;
  cancel: Cancel;
}

interface Relay {
  readonly requesterAddress: string;
  readonly requesterSeq: number;
  cancel: Cancel;
}

type Piggybacked = Extract<Message, { updates: readonly Update[] }>;

/** What the probe cycle needs from the membership around it. */
export interface ProbeCycleComponents {
  selfId: string;
  table: MemberTable;
  awareness: Awareness;
  counters: SwimStats;
  rng: Rng;
  send(message: Message, address: string): void;
  /** Sends with queued updates piggybacked; `first` goes first (a buddy accusation). */
  sendWithPiggyback(message: Piggybacked, address: string, first?: Update): void;
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
  private readonly order: ProbeOrder;
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

  /** One probe round. */
  probeNext(): void {
    const { table, awareness, counters } = this.components;
    const id = this.order.next(
      () => table.live().map((e) => e.nodeId),
      (candidate) => isLive(table.get(candidate)?.state ?? 'dead'),
    );
    const target = id === undefined ? undefined : table.get(id);
    if (target === undefined || this.probes.size >= this.limits.maxPendingProbes) return;
    const seq = this.nextSeq();
    const probe: PendingProbe = { target: target.nodeId, acked: false, nacks: 0, expectedNacks: 0, cancel: () => {} };
    this.probes.set(seq, probe);
    counters.probes++;
    // Buddy system: a suspect learns of its suspicion from the very probes aimed at it.
    const buddy = target.state === 'suspect' ? this.components.buddyAccusation(target) : undefined;
    this.components.sendWithPiggyback({ type: 'ping', from: this.components.selfId, seq, target: target.nodeId, updates: [] }, target.address, buddy);
    const intervalMs = awareness.scale(this.timings.probeIntervalMs);
    const timeoutMs = awareness.scale(this.timings.probeTimeoutMs);
    probe.cancel = this.components.deadline(timeoutMs, () => {
      if (probe.acked) return this.finish(seq);
      this.askIndirect(seq, probe, target);
      probe.cancel = this.components.deadline(Math.max(1, intervalMs - timeoutMs), () => this.finish(seq));
    });
  }

  /** A ping for us: ack it to the datagram's source, never to an address the packet claims. */
  onPing(seq: number, fromAddress: string): void {
    this.components.sendWithPiggyback({ type: 'ack', from: this.components.selfId, seq, updates: [] }, fromAddress);
  }

  onAck(seq: number): void {
    const probe = this.probes.get(seq);
    if (probe !== undefined) {
      probe.acked = true;
      return;
    }
    const relay = this.relays.get(seq);
    if (relay !== undefined) {
      this.relays.delete(seq);
      relay.cancel();
      this.components.send({ type: 'ack', from: this.components.selfId, seq: relay.requesterSeq, updates: [] }, relay.requesterAddress);
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
  relayPing(requesterSeq: number, targetId: string, targetAddress: string, requesterAddress: string): void {
    const { table, counters, awareness } = this.components;
    const target = table.get(targetId);
    if (target === undefined || target.address !== targetAddress || !isLive(target.state)) {
      return countDrop(counters, 'pingReqUnknownTarget');
    }
    if (this.relays.size >= this.limits.maxPendingProbes) return countDrop(counters, 'relayQueueFull');
    const seq = this.nextSeq();
    const relay: Relay = { requesterAddress, requesterSeq, cancel: () => {} };
    this.relays.set(seq, relay);
    this.components.send({ type: 'ping', from: this.components.selfId, seq, target: targetId, updates: [] }, targetAddress);
    relay.cancel = this.components.deadline(awareness.scale(this.timings.probeTimeoutMs), () => {
      if (!this.relays.delete(seq)) return;
      counters.nacksSent++;
      this.components.send({ type: 'nack', from: this.components.selfId, seq: requesterSeq }, requesterAddress);
    });
  }

  /** Cancels every pending probe and relay. */
  close(): void {
    for (const p of this.probes.values()) p.cancel();
    this.probes.clear();
    for (const r of this.relays.values()) r.cancel();
    this.relays.clear();
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
