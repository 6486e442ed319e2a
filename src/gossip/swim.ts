import type { Clock } from '../common/clock.js';
import { RingLimitError, invalidArgument } from '../common/errors.js';
import { randomSeed, seededRng, type Rng } from '../common/rng.js';
import { parseIpAddress, sourceKey } from './address.js';
import { Awareness } from './awareness.js';
import { CandidateArea } from './candidates.js';
import { resolveLimits, resolveTimings, type PresetName, type SwimLimits, type SwimTimings } from './defaults.js';
import { resolveWithDns, type ResolveHost } from './dns-resolver.js';
import { MembershipEmitter } from './emitter.js';
import type { Keyring } from './keyring.js';
import { MAX_LABEL_BYTES } from './packet.js';
import { MemberNews } from './member-news.js';
import { MemberTable, newEntry, toMember, type MemberEntry } from './member-table.js';
import type { AliveUpdate, Message, Update } from './messages.js';
import { checkedMeta, sameMeta } from './meta.js';
import { PacketIo } from './packet-io.js';
import { ProbeCycle } from './probe-cycle.js';
import { PushPull } from './push-pull.js';
import { realScheduler, type Cancel, type Scheduler } from './scheduler.js';
import { shuffle } from './shuffle.js';
import { countDrop, emptyStats, type SwimStats } from './stats.js';
import { pushPullIntervalMs, retransmitLimit } from './scaling.js';
import type { PacketTransport } from './transport.js';
import { isLive, type Member, type MembershipEventName, type MembershipEvents, type Membership, type Meta, type StopOptions } from './types.js';
import { isValidNodeId } from './validate.js';

export interface SwimMembershipOptions {
  /** A bound transport (UDP via createSwimMembership, or a MemoryNetwork endpoint). */
  readonly transport: PacketTransport;
  /** Stable identity; default: random per process. */
  readonly nodeId?: string;
  readonly meta?: Meta;
  /** Address peers use to reach us; default: the transport's local address. */
  readonly advertiseAddress?: string;
  readonly preset?: PresetName;
  readonly timings?: Partial<SwimTimings>;
  readonly limits?: Partial<SwimLimits>;
  /** Shared-secret keyring: when set, every packet is authenticated. */
  readonly keyring?: Keyring;
  /**
   * The cluster's name, carried by every packet (covered by the MAC with a keyring): packets
   * of another cluster, or without a name, are dropped ('otherCluster'), so two clusters on
   * one network — or a node on another cluster's old address — never merge. Default: none.
   */
  readonly clusterName?: string;
  readonly scheduler?: Scheduler;
  /**
   * Wall clock for the stamps of signed packets (compared across nodes, so it must follow
   * NTP, unlike the scheduler's monotonic clock). Default: Date.now, or the scheduler's
   * clock when a scheduler is injected (the simulator's virtual time).
   */
  readonly wallClock?: Clock;
  readonly rng?: Rng;
  readonly resolveHost?: ResolveHost;
  /** Per-boot generation; default: the clock's now (ms), so a restart is newer. */
  readonly generation?: number;
}

/** SWIM + Lifeguard membership over any PacketTransport. */
/** updateMeta spreads news at once at most this many times per gossipIntervalMs. */
const EAGER_ROUNDS_PER_TICK = 4;

export class SwimMembership implements Membership {
  readonly timings: SwimTimings;
  readonly limits: SwimLimits;
  private readonly transport: PacketTransport;
  private readonly scheduler: Scheduler;
  private readonly rng: Rng;
  private readonly resolveHost: ResolveHost;
  private readonly emitter = new MembershipEmitter();
  private readonly table: MemberTable;
  /** Without a cluster key: new members waiting to answer a ping (candidates.ts). */
  private readonly candidates: CandidateArea | undefined;
  private readonly awareness: Awareness;
  private readonly me: MemberEntry;
  private readonly counters: SwimStats = emptyStats();
  private readonly loops: Cancel[] = [];
  private readonly io: PacketIo;
  private readonly news: MemberNews;
  private readonly pushPull: PushPull;
  private readonly probeCycle: ProbeCycle;
  private running = false;
  private leaving = false;
  private stopped = false;
  private stopping: Promise<void> | undefined;
  /** When updateMeta last ran a gossip round at once. */
  private eagerGossipAtMs = Number.NEGATIVE_INFINITY;

  constructor(options: SwimMembershipOptions) {
    this.timings = resolveTimings(options.preset, options.timings);
    this.limits = resolveLimits(options.limits);
    this.transport = options.transport;
    const keyring = options.keyring;
    const label = Buffer.from(options.clusterName ?? '', 'utf8');
    if (label.length > MAX_LABEL_BYTES) throw invalidArgument('clusterName', `must be at most ${MAX_LABEL_BYTES} bytes`);
    this.scheduler = options.scheduler ?? realScheduler;
    const wallClock: Clock = options.wallClock ?? (options.scheduler !== undefined ? options.scheduler.clock : { now: () => Date.now() });
    this.rng = options.rng ?? seededRng(randomSeed());
    this.resolveHost = options.resolveHost ?? resolveWithDns;
    this.table = new MemberTable(this.limits.maxMembers, this.limits.maxUnprovenMembersPerSource);
    // With a key, a stranger's packets are dropped before they say anything: no candidates.
    this.candidates =
      keyring === undefined
        ? new CandidateArea({ max: this.limits.maxCandidates, maxPerSource: this.limits.maxUnprovenMembersPerSource, ttlMs: this.limits.candidateTtlMs })
        : undefined;
    this.awareness = new Awareness(this.timings.awarenessMax);
    const firstSeq = this.rng.int(0x7fff_ffff); // drawn here, where the probe sequence always began: seeded runs replay as before
    // Drawn only with a keyring, so that unsigned runs replay exactly as before.
    const epoch = keyring === undefined ? 0 : this.rng.int(0x7fff_ffff) + 1;
    this.io = new PacketIo({
      transport: this.transport,
      keyring,
      label,
      limits: this.limits,
      counters: this.counters,
      wallClock,
      epoch,
      transmitLimit: () => retransmitLimit(this.table.liveCount + 1, this.timings.retransmitMultiplier),
    });

    const nodeId = options.nodeId ?? `node-${this.rng.int(0x7fff_ffff).toString(36)}${this.rng.int(0x7fff_ffff).toString(36)}`;
    if (!isValidNodeId(nodeId, this.limits)) {
      throw invalidArgument('nodeId', `must be 1..${this.limits.maxNodeIdChars} chars of [A-Za-z0-9._@-], starting alphanumeric`);
    }
    const address = options.advertiseAddress ?? this.transport.localAddress;
    const parsed = parseIpAddress(address);
    if (parsed === undefined || parsed.host === '0.0.0.0' || parsed.host === '::') {
      throw invalidArgument('advertiseAddress', `must be a routable IP host:port, got ${JSON.stringify(address)} (set advertiseHost when binding a wildcard)`);
    }
    const generation = options.generation ?? Math.floor(this.scheduler.clock.now());
    if (!Number.isSafeInteger(generation) || generation < 0) throw invalidArgument('generation', 'must be a non-negative safe integer');
    this.me = newEntry({ nodeId, address, generation, incarnation: 0, meta: checkedMeta(options.meta ?? {}, this.limits) }, 'alive', this.scheduler.clock.now());
    const send = (message: Message, to: string, toId: string | undefined): void => this.io.send(message, to, toId);
    this.news = new MemberNews({
      me: this.me,
      table: this.table,
      counters: this.counters,
      emitter: this.emitter,
      awareness: this.awareness,
      scheduler: this.scheduler,
      timings: this.timings,
      limits: this.limits,
      candidates: this.candidates,
      confirm: (target, to, done) => this.probeCycle.confirm(target, to, done),
      isRunning: () => this.running,
      isLeaving: () => this.leaving,
      send,
      queueBroadcast: (u) => this.io.queueBroadcast(u),
      randomAlive: (count, excludeId) => this.randomAlive(count, excludeId),
      probeSoon: (id) => this.probeCycle.soon(id),
      guard: (fn) => this.guard(fn),
      gossipNow: () => this.gossipTick(),
      selfAlive: () => this.selfAlive(),
    });
    this.pushPull = new PushPull({
      me: this.me,
      timings: this.timings,
      resolveHost: this.resolveHost,
      isRunning: () => this.running,
      table: this.table,
      io: this.io,
      counters: this.counters,
      rng: this.rng,
      scheduler: this.scheduler,
      limits: this.limits,
      mergeState: (records, sender, source) => this.news.mergeState(records, sender, source),
      proveSeed: (records, seedId, fromAddress) => this.news.proveSeed(records, seedId, fromAddress),
    });
    this.probeCycle = new ProbeCycle(
      {
        selfId: nodeId,
        table: this.table,
        awareness: this.awareness,
        counters: this.counters,
        rng: this.rng,
        send,
        sendWithPiggyback: (message, to, toId, first) => this.io.sendWithPiggyback(message, to, toId, first),
        deadline: (delayMs, fn) => this.deadline(delayMs, fn),
        randomAlive: (count, excludeId) => this.randomAlive(count, excludeId),
        suspect: (target) => this.news.applyUpdate(this.news.accusation('suspect', target, this.me.nodeId)),
        buddyAccusation: (target) => this.news.accusation('suspect', target, this.me.nodeId),
      },
      this.timings,
      this.limits,
      firstSeq,
    );
  }

  // ---- public API ----------------------------------------------------------------------

  get self(): Member {
    return toMember(this.me);
  }

  get address(): string {
    return this.me.address;
  }

  members(): Member[] {
    const list = [this.me, ...this.table.live()].map(toMember);
    return list.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  }

  /** Every tracked member, including failed and left ones still remembered. */
  allMembers(): Member[] {
    return [this.me, ...this.table.all()].map(toMember);
  }

  stats(): SwimStats {
    return {
      ...this.counters,
      dropReasons: { ...this.counters.dropReasons },
      awarenessScore: this.awareness.score,
      membersRejectedFull: this.table.rejectedFull,
      membersEvictedUnproven: this.table.evictedUnproven,
      membersRejectedSource: this.table.rejectedSource + (this.candidates?.refusedSource ?? 0),
      membersProven: this.table.provenCount,
      candidates: this.candidates?.size ?? 0,
      candidatesRefused: this.candidates?.refusedFull ?? 0,
      candidatesDisplaced: this.candidates?.displaced ?? 0,
      candidatesExpired: this.candidates?.expired ?? 0,
      broadcastsEvicted: this.io.broadcastsEvicted,
    };
  }

  on<E extends MembershipEventName>(event: E, listener: MembershipEvents[E]): () => void {
    return this.emitter.on(event, listener);
  }

  off<E extends MembershipEventName>(event: E, listener: MembershipEvents[E]): void {
    this.emitter.off(event, listener);
  }

  async start(): Promise<void> {
    if (this.stopped) throw new RingLimitError('FAILED_PRECONDITION', 'a stopped membership cannot be restarted; create a new one');
    if (this.running) return;
    this.running = true;
    this.transport.onPacket((bytes, from) => this.onPacket(bytes, from));
    this.io.queueBroadcast(this.selfAlive());
    this.loop(
      () => this.probeCycle.intervalMs(),
      () => {
        if (!this.leaving) this.probeCycle.probeNext();
      },
    );
    this.loop(
      () => this.timings.gossipIntervalMs,
      () => {
        this.news.tickCandidates();
        this.gossipTick();
      },
    );
    this.loop(
      () => this.jittered(pushPullIntervalMs(this.timings.pushPullIntervalMs, this.table.liveCount + 1)),
      () => {
        if (!this.leaving) this.pushPull.tick();
      },
    );
  }

  /** Replace own metadata, bump incarnation and gossip it. */
  updateMeta(meta: Meta): void {
    // After a leave, a newer alive record would bring us back to life in everyone's view.
    if (this.leaving || this.stopped) throw new RingLimitError('FAILED_PRECONDITION', 'updateMeta after stop()');
    const checked = checkedMeta(meta, this.limits);
    if (sameMeta(checked, this.me.meta)) return;
    this.me.meta = checked;
    this.me.incarnation++;
    this.io.queueBroadcast(this.selfAlive());
    // A member's own news (turning active, draining, a handoff's end) is what the others wait
    // on to move keys: spread it now, not at the next gossip tick — at most a few extra rounds
    // per tick (the load factor may change as often as every 10 ms).
    const nowMs = this.scheduler.clock.now();
    if (this.running && nowMs - this.eagerGossipAtMs >= this.timings.gossipIntervalMs / EAGER_ROUNDS_PER_TICK) {
      this.eagerGossipAtMs = nowMs;
      this.guard(() => this.gossipTick());
    }
  }

  /**
   * Contact seeds ('host:port', DNS names allowed: every resolved address is tried) until one
   * answers or joinTimeoutMs passes. Seeds that are only ourselves form a one-node cluster.
   * Resolves with the number of addresses contacted (0 for a one-node cluster).
   */
  async join(seeds: readonly string[]): Promise<number> {
    if (!this.running) throw new RingLimitError('FAILED_PRECONDITION', 'start() before join()');
    return this.pushPull.join(seeds, [this.me.address, this.transport.localAddress]);
  }

  /** Graceful by default: announce the leave so peers drop us at once, then close. */
  stop(options: StopOptions = {}): Promise<void> {
    this.stopping ??= this.shutdown(options.graceful ?? true);
    return this.stopping;
  }

  private async shutdown(graceful: boolean): Promise<void> {
    if (this.running && graceful) await this.announceLeave();
    this.stopped = true;
    this.running = false;
    for (const cancel of this.loops.splice(0)) cancel();
    this.news.close();
    this.probeCycle.close();
    this.pushPull.close();
    await this.transport.close();
  }

  // ---- timers ------------------------------------------------------------------------------

  /** A self-rescheduling timer whose period is re-read each round (awareness scales it). */
  private loop(periodMs: () => number, tick: () => void): void {
    let cancel: Cancel = () => {};
    const index = this.loops.length;
    const schedule = (): void => {
      cancel = this.scheduler.after(periodMs(), () => {
        if (!this.running) return;
        this.guard(tick);
        schedule();
      });
      this.loops[index] = () => cancel();
    };
    schedule();
  }

  private jittered(ms: number): number {
    return ms + this.rng.int(Math.max(1, Math.floor(ms / 10)));
  }

  /** Protocol code must never take the process down: count and carry on. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch {
      countDrop(this.counters, 'internalError');
    }
  }

  /** Timer that judges after already-received packets are handled, and notices our own stalls. */
  private deadline(delayMs: number, fn: () => void): Cancel {
    const dueMs = this.scheduler.clock.now() + delayMs;
    let cancelIo: Cancel = () => {};
    const cancelTimer = this.scheduler.after(delayMs, () => {
      if (this.scheduler.clock.now() - dueMs > this.timings.probeTimeoutMs) {
        this.counters.lateTimers++;
        this.awareness.apply(1);
      }
      cancelIo = this.scheduler.afterPendingIo(() => {
        if (this.running) this.guard(fn);
      });
    });
    return () => {
      cancelTimer();
      cancelIo();
    };
  }

  // ---- receiving ---------------------------------------------------------------------------

  private onPacket(bytes: Uint8Array, fromAddress: string): void {
    if (!this.running) return;
    const message = this.io.receive(bytes, fromAddress, this.me.nodeId);
    if (message !== undefined) this.guard(() => this.handle(message, fromAddress));
  }

  private handle(m: Message, fromAddress: string): void {
    const source = sourceKey(fromAddress);
    const sender = this.table.get(m.from);
    if (sender !== undefined && !sender.proven && sender.address === fromAddress && isLive(sender.state)) this.probeCycle.proveSoon(m.from);
    switch (m.type) {
      case 'ping':
        if (m.target !== this.me.nodeId) return countDrop(this.counters, 'pingForOtherNode');
        this.news.applyUpdates(m.updates, source, m.from);
        return this.probeCycle.onPing(m.seq, fromAddress, m.from);
      case 'ping-req':
        this.news.applyUpdates(m.updates, source, m.from);
        return this.probeCycle.relayPing(m.seq, m.target, m.targetAddress, fromAddress, m.from);
      case 'ack':
        this.news.applyUpdates(m.updates, source, m.from);
        return this.probeCycle.onAck(m.seq, m.from, fromAddress);
      case 'nack':
        return this.probeCycle.onNack(m.seq);
      case 'gossip':
        return this.news.applyUpdates(m.updates, source, m.from);
      case 'sync':
        return this.pushPull.onSync(m.members, m.from, fromAddress, source, m.wantsReply);
      case 'sync-reply':
        return this.pushPull.onSyncReply(m.members, m.from, fromAddress, source);
      case 'sync-digest':
        return this.pushPull.onSyncDigest(m.digest, fromAddress, m.from);
    }
  }

  // ---- dissemination -----------------------------------------------------------------------

  private selfAlive(): AliveUpdate {
    const { nodeId, generation, incarnation, address, meta } = this.me;
    return { kind: 'alive', nodeId, generation, incarnation, address, meta };
  }

  /**
   * Up to `count` distinct alive members (not `excludeId`), at random. Picks from the live
   * list in O(count) in a big cluster; a small one is shuffled whole, so every member is a
   * candidate even when most are suspects.
   */
  private randomAlive(count: number, excludeId?: string): MemberEntry[] {
    const live = this.table.liveCount;
    const eligible = (e: MemberEntry | undefined): e is MemberEntry => e !== undefined && e.state === 'alive' && e.nodeId !== excludeId;
    if (live <= 4 * count + 8) return shuffle(this.table.live().filter(eligible), this.rng).slice(0, count);
    const picked: MemberEntry[] = [];
    for (let attempt = 0; attempt < 8 * count && picked.length < count; attempt++) {
      const e = this.table.liveAtIndex(this.rng.int(live));
      if (eligible(e) && !picked.includes(e)) picked.push(e);
    }
    return picked;
  }

  private gossipTick(): void {
    this.table.prune(this.scheduler.clock.now(), this.timings.deadRetentionMs);
    // Buddy system: whoever we suspect hears it from us every round until it refutes or fails,
    // even if our first messages were lost (e.g. we were the partitioned side).
    const suspects = this.table.suspects.size === 0 ? [] : shuffle([...this.table.suspects], this.rng).slice(0, this.timings.gossipFanout);
    for (const suspect of suspects) {
      const buddy = this.news.accusation('suspect', suspect, this.me.nodeId);
      this.io.sendWithPiggyback({ type: 'gossip', from: this.me.nodeId, updates: [] }, suspect.address, suspect.nodeId, buddy);
    }
    if (this.io.pendingBroadcasts === 0) return;
    // One of the fan-out is a member proven by a direct ack: news keeps flowing between real
    // members even when most of the table is invented (a flood) and unreachable.
    const peers = this.randomAlive(this.timings.gossipFanout);
    const proven = peers.length === 0 ? undefined : this.table.randomProven((n) => this.rng.int(n));
    if (proven !== undefined && proven.state === 'alive' && !peers.includes(proven)) peers[Math.max(0, peers.length - 1)] = proven;
    for (const peer of peers) {
      if (this.io.pendingBroadcasts === 0) return;
      this.io.sendWithPiggyback({ type: 'gossip', from: this.me.nodeId, updates: [] }, peer.address, peer.nodeId);
    }
  }

  // ---- leave -------------------------------------------------------------------------------

  private async announceLeave(): Promise<void> {
    this.leaving = true;
    this.me.incarnation++;
    this.me.state = 'left';
    const left: Update = { kind: 'left', nodeId: this.me.nodeId, generation: this.me.generation, incarnation: this.me.incarnation };
    this.io.queueBroadcast(left);
    // Tell every live member directly (bounded by maxMembers), then keep gossiping a moment.
    for (const peer of this.table.live()) this.io.send({ type: 'gossip', from: this.me.nodeId, updates: [left] }, peer.address, peer.nodeId);
    await new Promise<void>((resolve) => this.scheduler.after(this.timings.leavePropagateMs, resolve, true));
  }
}
