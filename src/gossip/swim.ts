import type { Clock } from '../common/clock.js';
import { RingLimitError, invalidArgument } from '../common/errors.js';
import { randomSeed, seededRng, type Rng } from '../common/rng.js';
import { isValidIpAddress, parseIpAddress, parseSeed, sourceKey } from './address.js';
import { chunkBySize } from './chunks.js';
import { Awareness } from './awareness.js';
import { BroadcastQueue } from './broadcast-queue.js';
import { resolveLimits, resolveTimings, type PresetName, type SwimLimits, type SwimTimings } from './defaults.js';
import { resolveWithDns, type ResolveHost } from './dns-resolver.js';
import { MembershipEmitter } from './emitter.js';
import type { Keyring } from './keyring.js';
import { MAX_LABEL_BYTES } from './packet.js';
import { ReplayGuard, type Stamp } from './replay-guard.js';
import { compareVersions, MemberTable, newEntry, toMember, toRecord, type Applied, type MemberEntry } from './member-table.js';
import { sameDigest, stateDigest } from './digest.js';
import { decodePacket, encodedRecordBytes, encodedUpdateBytes, encodeMessage } from './message-codec.js';
import type { AccusationUpdate, AliveUpdate, MemberRecord, Message, StateDigest, Update } from './messages.js';
import { checkedMeta, sameMeta } from './meta.js';
import { ProbeCycle } from './probe-cycle.js';
import { RateWindow } from './rate-window.js';
import { realScheduler, type Cancel, type Scheduler } from './scheduler.js';
import { resolveSeedAddresses } from './seeds.js';
import { shuffle } from './shuffle.js';
import { countDrop, emptyStats, type SwimStats } from './stats.js';
import { Suspicion } from './suspicion.js';
import { pushPullIntervalMs, retransmitLimit, suspicionBoundsMs } from './scaling.js';
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

const ARRAY_HEADER_GROWTH_BYTES = 3; // msgpack fixarray -> array16 header
/** A signed packet stamped further than this from the receiver's clock is refused (nodes keep clocks far closer with NTP). */
const REPLAY_MAX_SKEW_MS = 30_000;

/** SWIM + Lifeguard membership over any PacketTransport. */
export class SwimMembership implements Membership {
  readonly timings: SwimTimings;
  readonly limits: SwimLimits;
  private readonly transport: PacketTransport;
  private readonly keyring: Keyring | undefined;
  private readonly label: Uint8Array;
  private readonly scheduler: Scheduler;
  private readonly rng: Rng;
  private readonly resolveHost: ResolveHost;
  private readonly emitter = new MembershipEmitter();
  private readonly table: MemberTable;
  private readonly broadcasts: BroadcastQueue;
  private readonly awareness: Awareness;
  private readonly suspicions = new Map<string, Suspicion>();
  private readonly joinWaiters = new Set<() => void>();
  private readonly me: MemberEntry;
  private readonly counters: SwimStats = emptyStats();
  private readonly loops: Cancel[] = [];
  private readonly probeCycle: ProbeCycle;
  private running = false;
  private leaving = false;
  private stopped = false;
  private stopping: Promise<void> | undefined;
  private syncRepliesReceived = 0;
  /** Seed addresses of the current join: one that answers our Sync proves itself (MemberTable.markProven). Bounded by maxSeeds' resolution. */
  private readonly seedsAsked = new Set<string>();
  private readonly syncReplies: RateWindow;
  /** With a keyring: this process's stamp epoch and packet count, and the check of others' stamps. */
  private epoch: number;
  private packetsStamped = 0;
  private readonly replay: ReplayGuard | undefined;
  private readonly wallClock: Clock;

  constructor(options: SwimMembershipOptions) {
    this.timings = resolveTimings(options.preset, options.timings);
    this.limits = resolveLimits(options.limits);
    this.transport = options.transport;
    this.keyring = options.keyring;
    this.label = Buffer.from(options.clusterName ?? '', 'utf8');
    if (this.label.length > MAX_LABEL_BYTES) throw invalidArgument('clusterName', `must be at most ${MAX_LABEL_BYTES} bytes`);
    this.scheduler = options.scheduler ?? realScheduler;
    this.wallClock = options.wallClock ?? (options.scheduler !== undefined ? options.scheduler.clock : { now: () => Date.now() });
    this.rng = options.rng ?? seededRng(randomSeed());
    this.resolveHost = options.resolveHost ?? resolveWithDns;
    this.table = new MemberTable(this.limits.maxMembers, this.limits.maxUnprovenMembersPerSource);
    this.broadcasts = new BroadcastQueue(this.limits.maxBroadcasts);
    this.awareness = new Awareness(this.timings.awarenessMax);
    const firstSeq = this.rng.int(0x7fff_ffff); // drawn here, where the probe sequence always began: seeded runs replay as before
    this.syncReplies = new RateWindow(this.limits.maxSyncRepliesPerSecond);
    // Drawn only with a keyring, so that unsigned runs replay exactly as before.
    this.epoch = this.keyring === undefined ? 0 : this.rng.int(0x7fff_ffff) + 1;
    this.replay = this.keyring === undefined ? undefined : new ReplayGuard({ maxClockSkewMs: REPLAY_MAX_SKEW_MS, maxSenders: this.limits.maxMembers * 2 });

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
    this.probeCycle = new ProbeCycle(
      {
        selfId: nodeId,
        table: this.table,
        awareness: this.awareness,
        counters: this.counters,
        rng: this.rng,
        send: (message, to, toId) => this.send(message, to, toId),
        sendWithPiggyback: (message, to, toId, first) => this.sendWithPiggyback(message, to, toId, first),
        deadline: (delayMs, fn) => this.deadline(delayMs, fn),
        randomAlive: (count, excludeId) => this.randomAlive(count, excludeId),
        suspect: (target) => this.applyUpdate(this.accusation('suspect', target, this.me.nodeId)),
        buddyAccusation: (target) => this.accusation('suspect', target, this.me.nodeId),
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
      membersRejectedSource: this.table.rejectedSource,
      membersProven: this.table.provenCount,
      broadcastsEvicted: this.broadcasts.evicted,
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
    this.queueBroadcast(this.selfAlive());
    this.loop(
      () => this.probeCycle.intervalMs(),
      () => {
        if (!this.leaving) this.probeCycle.probeNext();
      },
    );
    this.loop(() => this.timings.gossipIntervalMs, () => this.gossipTick());
    this.loop(() => this.jittered(pushPullIntervalMs(this.timings.pushPullIntervalMs, this.table.liveCount + 1)), () => this.pushPullTick());
  }

  /** Replace own metadata, bump incarnation and gossip it. */
  updateMeta(meta: Meta): void {
    // After a leave, a newer alive record would bring us back to life in everyone's view.
    if (this.leaving || this.stopped) throw new RingLimitError('FAILED_PRECONDITION', 'updateMeta after stop()');
    const checked = checkedMeta(meta, this.limits);
    if (sameMeta(checked, this.me.meta)) return;
    this.me.meta = checked;
    this.me.incarnation++;
    this.queueBroadcast(this.selfAlive());
  }

  /**
   * Contact seeds ('host:port', DNS names allowed: every resolved address is tried) until one
   * answers or joinTimeoutMs passes. Seeds that are only ourselves form a one-node cluster.
   * Resolves with the number of addresses contacted (0 for a one-node cluster).
   */
  async join(seeds: readonly string[]): Promise<number> {
    if (!this.running) throw new RingLimitError('FAILED_PRECONDITION', 'start() before join()');
    if (seeds.length === 0) return 0;
    if (seeds.length > this.limits.maxSeeds) throw invalidArgument('seeds', `at most ${this.limits.maxSeeds} seeds, got ${seeds.length}`);
    const parsed = seeds.map((s, i) => {
      const hp = parseSeed(s);
      if (hp === undefined) throw invalidArgument(`seeds[${i}]`, `must be host:port with port 1..65535, got ${JSON.stringify(s)}`);
      return hp;
    });
    const deadlineMs = this.scheduler.clock.now() + this.timings.joinTimeoutMs;
    let backoffMs = this.timings.joinBackoffInitialMs;
    let lastTried: string[] = [];
    for (let attempt = 0; attempt < this.limits.maxJoinAttempts && this.running; attempt++) {
      const targets = await resolveSeedAddresses(parsed, this.resolveHost, [this.me.address, this.transport.localAddress], this.limits.maxSeeds);
      if (targets.resolvedAny && targets.addresses.length === 0) return 0;
      lastTried = targets.addresses;
      this.seedsAsked.clear();
      for (const address of targets.addresses.slice(0, this.limits.maxSeeds)) this.seedsAsked.add(address);
      const before = this.syncRepliesReceived;
      for (const address of targets.addresses) this.sendSync(address, true, undefined);
      const waitMs = Math.min(backoffMs, Math.max(0, deadlineMs - this.scheduler.clock.now()));
      await this.waitForSyncReply(waitMs + this.rng.int(Math.max(1, Math.floor(waitMs / 4))));
      if (this.syncRepliesReceived > before) return targets.addresses.length;
      if (this.scheduler.clock.now() >= deadlineMs) break;
      backoffMs = Math.min(this.timings.joinBackoffMaxMs, backoffMs * 2);
    }
    throw new RingLimitError(
      'UNAVAILABLE',
      `join: no seed answered within ${this.timings.joinTimeoutMs} ms (tried ${lastTried.join(', ') || 'no resolvable address'})`,
      'seeds',
    );
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
    for (const s of this.suspicions.values()) s.cancel();
    this.suspicions.clear();
    this.probeCycle.close();
    for (const wake of this.joinWaiters) wake();
    this.joinWaiters.clear();
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
    this.counters.packetsReceived++;
    this.counters.bytesReceived += bytes.length;
    const result = decodePacket(bytes, this.keyring, this.limits, this.label, this.me.nodeId);
    if (!result.ok) return countDrop(this.counters, result.reason);
    if (!isValidIpAddress(fromAddress)) return countDrop(this.counters, 'badSourceAddress');
    if (result.message.from === this.me.nodeId) return countDrop(this.counters, 'fromSelf');
    // Signed packets name their receiver (packet.ts), but for a join's Sync to a seed not known yet.
    if (this.keyring !== undefined && !result.bound && result.message.type !== 'sync') return countDrop(this.counters, 'unbound');
    if (this.replay !== undefined) {
      const verdict = result.stamp === undefined ? 'replayed' : this.replay.accept(result.message.from, result.stamp, this.wallClock.now());
      if (verdict !== 'ok') return countDrop(this.counters, verdict);
    }
    this.guard(() => this.handle(result.message, fromAddress));
  }

  private handle(m: Message, fromAddress: string): void {
    const source = sourceKey(fromAddress);
    const sender = this.table.get(m.from);
    if (sender !== undefined && !sender.proven && sender.address === fromAddress && isLive(sender.state)) this.probeCycle.proveSoon(m.from);
    switch (m.type) {
      case 'ping':
        if (m.target !== this.me.nodeId) return countDrop(this.counters, 'pingForOtherNode');
        this.applyUpdates(m.updates, source, m.from);
        return this.probeCycle.onPing(m.seq, fromAddress, m.from);
      case 'ping-req':
        this.applyUpdates(m.updates, source, m.from);
        return this.probeCycle.relayPing(m.seq, m.target, m.targetAddress, fromAddress, m.from);
      case 'ack':
        this.applyUpdates(m.updates, source, m.from);
        return this.probeCycle.onAck(m.seq, m.from, fromAddress);
      case 'nack':
        return this.probeCycle.onNack(m.seq);
      case 'gossip':
        return this.applyUpdates(m.updates, source, m.from);
      case 'sync':
        this.mergeState(m.members, m.from, source);
        if (m.wantsReply) this.replySync(fromAddress, m.from);
        return;
      case 'sync-reply':
        if (this.seedsAsked.has(fromAddress)) this.proveSeed(m.members, m.from, fromAddress);
        this.mergeState(m.members, m.from, source);
        this.syncRepliesReceived++;
        for (const wake of this.joinWaiters) wake();
        return;
      case 'sync-digest':
        return this.onSyncDigest(m.digest, fromAddress, m.from);
    }
  }

  // ---- state merging -----------------------------------------------------------------------

  /** A seed we asked answered from the address we asked: take its own record first, proven, so what it teaches is not capped. */
  private proveSeed(records: readonly MemberRecord[], seedId: string, fromAddress: string): void {
    const own = records.find((r) => r.nodeId === seedId && r.address === fromAddress && r.state === 'alive');
    if (own === undefined) return;
    this.applyUpdate({ kind: 'alive', nodeId: own.nodeId, generation: own.generation, incarnation: own.incarnation, address: own.address, meta: own.meta });
    if (this.table.get(seedId)?.address === fromAddress) this.table.markProven(seedId);
  }

  /** `fromId`: the packet's sender. What it says of itself, from its own address, is never capped as its source's teaching. */
  private applyUpdates(updates: readonly Update[], source: string, fromId: string): void {
    for (const u of updates) this.applyUpdate(u, selfIntroduction(u, fromId, source) ? '' : source);
  }

  /** `source`: who told us (sourceKey of the packet; '' for our own verdicts). */
  private applyUpdate(u: Update, source = ''): void {
    if (this.implausible(u)) return;
    if (u.nodeId === this.me.nodeId) return this.aboutSelf(u);
    const now = this.scheduler.clock.now();
    switch (u.kind) {
      case 'alive': {
        const applied = this.table.applyAlive(u, now, source);
        if (applied === undefined) return;
        this.endSuspicion(u.nodeId);
        return this.announce(applied, u);
      }
      case 'suspect': {
        const result = this.table.applySuspect(u, now);
        if (result === undefined) return;
        if (result.kind === 'suspected') {
          this.startSuspicion(result.entry, u.from);
          if (u.from === this.me.nodeId) this.tellSuspect(result.entry, u);
          else this.probeCycle.soon(u.nodeId); // our own verdict, quickly
          this.queueBroadcast(u);
          return this.emitter.emit('update', toMember(result.entry));
        }
        if (this.suspicions.get(u.nodeId)?.confirm(u.from) === true) this.queueBroadcast(u);
        return;
      }
      case 'dead': {
        const applied = this.table.applyDead(u, now);
        if (applied === undefined) return;
        this.endSuspicion(u.nodeId);
        return this.announce(applied, u);
      }
      case 'left': {
        const applied = this.table.applyLeft(u, now);
        if (applied === undefined) return;
        this.endSuspicion(u.nodeId);
        return this.announce(applied, u);
      }
    }
  }

  private announce(applied: Applied, u: Update): void {
    this.queueBroadcast(u);
    if (applied.evicted !== undefined) {
      // Dropped for room, never proven: gone from our view, as a failure is (not gossiped: others judge for themselves).
      this.endSuspicion(applied.evicted.nodeId);
      this.emitter.emit('fail', toMember(applied.evicted));
    }
    if (applied.event !== undefined) this.emitter.emit(applied.event, toMember(applied.entry));
  }

  /**
   * Whether `u` cannot be true, and is dropped (counted): a generation further ahead of our
   * clock than maxGenerationAheadMs, or — for a live member of the generation we know — an
   * incarnation more than maxIncarnationJump above the one we hold. News of ourselves is
   * judged by aboutSelf, which can always refute it.
   */
  private implausible(u: Update): boolean {
    if (u.generation > this.scheduler.clock.now() + this.limits.maxGenerationAheadMs) {
      this.counters.implausibleGenerations++;
      return true;
    }
    if (u.nodeId === this.me.nodeId) return false;
    const known = this.table.get(u.nodeId);
    if (known !== undefined && isLive(known.state) && known.generation === u.generation && u.incarnation - known.incarnation > this.limits.maxIncarnationJump) {
      this.counters.implausibleIncarnations++;
      return true;
    }
    return false;
  }

  /** News about ourselves: refute anything that is not our current truth. */
  private aboutSelf(u: Update): void {
    if (this.leaving) return;
    if (u.generation > this.me.generation) {
      // An earlier boot of ours looked newer (clock went back): move past it.
      this.me.generation = u.generation + 1;
      this.me.incarnation = 0;
      return this.refute(u);
    }
    if (u.generation < this.me.generation) return; // about a previous boot of ours
    if (u.kind === 'alive') {
      const differs = u.address !== this.me.address || !sameMeta(u.meta, this.me.meta);
      if (u.incarnation > this.me.incarnation || (u.incarnation === this.me.incarnation && differs)) this.refuteAbove(u);
      return;
    }
    if (u.incarnation < this.me.incarnation) return;
    this.refuteAbove(u);
  }

  /**
   * Refute `u` with the next incarnation — unless that would be implausible to the members
   * that know us (a jump past maxIncarnationJump) or unsafe (past 2^53 − 1): then with a new
   * generation, which outranks every incarnation of this one. A member can always refute.
   */
  private refuteAbove(u: Update): void {
    const next = u.incarnation + 1;
    if (Number.isSafeInteger(next) && next - this.me.incarnation <= this.limits.maxIncarnationJump) {
      this.me.incarnation = next;
    } else {
      this.me.generation = Math.max(this.me.generation + 1, Math.floor(this.scheduler.clock.now()));
      this.me.incarnation = 0;
      this.counters.generationRefutations++;
    }
    this.refute(u);
  }

  private refute(u: Update): void {
    this.counters.refutations++;
    this.awareness.apply(1);
    const alive = this.selfAlive();
    this.queueBroadcast(alive);
    // Tell the accuser directly too, and a few others at once: suspicion timers are short on
    // a LAN, and this starts the refutation's spread a gossip round or two earlier.
    const accuser = u.kind === 'suspect' || u.kind === 'dead' ? this.table.get(u.from) : undefined;
    if (accuser !== undefined && isLive(accuser.state)) {
      this.send({ type: 'gossip', from: this.me.nodeId, updates: [alive] }, accuser.address, accuser.nodeId);
    }
    for (const peer of this.randomAlive(2 * this.timings.gossipFanout, accuser?.nodeId)) this.send({ type: 'gossip', from: this.me.nodeId, updates: [alive] }, peer.address, peer.nodeId);
  }

  private mergeState(records: readonly MemberRecord[], sender: string, source: string): void {
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
        this.applyUpdate(alive, selfIntroduction(alive, sender, source) ? '' : source);
      } else if (r.state === 'left') {
        this.applyUpdate({ kind: 'left', nodeId: r.nodeId, generation: r.generation, incarnation: r.incarnation }, source);
      } else {
        // Suspect and dead records become suspicions here (as memberlist does): the subject can
        // still refute, and our own probes decide. Unknown members are learned only when live.
        if (r.state === 'suspect' || r.nodeId === this.me.nodeId) this.applyUpdate(alive, source);
        this.applyUpdate({ kind: 'suspect', nodeId: r.nodeId, generation: r.generation, incarnation: r.incarnation, from: sender }, source);
      }
    }
  }

  // ---- suspicion ---------------------------------------------------------------------------

  private startSuspicion(entry: MemberEntry, accuser: string): void {
    this.endSuspicion(entry.nodeId);
    const members = this.table.liveCount + 1;
    const { minMs, maxMs } = suspicionBoundsMs(members, this.timings.suspicionMinMs, this.timings.suspicionMaxMultiplier);
    const k = Math.min(this.timings.suspicionConfirmations, Math.max(0, members - 2));
    const { generation, incarnation } = entry;
    const suspicion = new Suspicion(this.scheduler, accuser, k, minMs, maxMs, () => {
      this.suspicions.delete(entry.nodeId);
      if (!this.running) return;
      const cur = this.table.get(entry.nodeId);
      if (cur === undefined || cur.state !== 'suspect' || compareVersions(cur, { generation, incarnation }) > 0) return;
      this.guard(() => {
        this.applyUpdate(this.accusation('dead', cur, this.me.nodeId));
        this.gossipTick(); // a verdict is worth spreading now, not at the next tick
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
    this.send({ type: 'gossip', from: this.me.nodeId, updates: [u] }, entry.address, entry.nodeId);
  }

  private accusation(kind: 'suspect' | 'dead', entry: MemberEntry, from: string): AccusationUpdate {
    return { kind, nodeId: entry.nodeId, generation: entry.generation, incarnation: entry.incarnation, from };
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

  private queueBroadcast(u: Update): void {
    this.broadcasts.enqueue(u, encodedUpdateBytes(u));
  }

  private transmitLimit(): number {
    return retransmitLimit(this.table.liveCount + 1, this.timings.retransmitMultiplier);
  }

  private gossipTick(): void {
    this.table.prune(this.scheduler.clock.now(), this.timings.deadRetentionMs);
    // Buddy system: whoever we suspect hears it from us every round until it refutes or fails,
    // even if our first messages were lost (e.g. we were the partitioned side).
    const suspects = this.table.suspects.size === 0 ? [] : shuffle([...this.table.suspects], this.rng).slice(0, this.timings.gossipFanout);
    for (const suspect of suspects) {
      const buddy = this.accusation('suspect', suspect, this.me.nodeId);
      this.sendWithPiggyback({ type: 'gossip', from: this.me.nodeId, updates: [] }, suspect.address, suspect.nodeId, buddy);
    }
    if (this.broadcasts.size === 0) return;
    // One of the fan-out is a member proven by a direct ack: news keeps flowing between real
    // members even when most of the table is invented (a flood) and unreachable.
    const peers = this.randomAlive(this.timings.gossipFanout);
    const proven = peers.length === 0 ? undefined : this.table.randomProven((n) => this.rng.int(n));
    if (proven !== undefined && proven.state === 'alive' && !peers.includes(proven)) peers[Math.max(0, peers.length - 1)] = proven;
    for (const peer of peers) {
      if (this.broadcasts.size === 0) return;
      this.sendWithPiggyback({ type: 'gossip', from: this.me.nodeId, updates: [] }, peer.address, peer.nodeId);
    }
  }

  /**
   * Anti-entropy with one member; recently failed ones too, which is how partitions heal.
   * It opens with a digest of our live view: the full state (about 72 bytes a member) goes
   * both ways only when the peer's view differs.
   */
  private pushPullTick(): void {
    if (this.leaving) return;
    // While the table holds members nobody proved (a flood's, mostly unreachable), every other
    // exchange is with a proven member: a random pick would nearly always be an invented one,
    // and a real member's news would reach us only by chance.
    const diluted = this.table.provenCount < this.table.liveCount && this.rng.int(2) === 0;
    const proven = diluted ? this.table.randomProven((n) => this.rng.int(n)) : undefined;
    const candidates = proven === undefined ? this.table.all().filter((e) => e.state !== 'left') : [proven];
    const peer = candidates[this.rng.int(candidates.length)];
    if (peer === undefined) return;
    this.counters.syncDigestsSent++;
    this.send({ type: 'sync-digest', from: this.me.nodeId, digest: this.digest() }, peer.address, peer.nodeId);
  }

  private digest(): StateDigest {
    return stateDigest(this.me, this.table.liveView());
  }

  /** Our view differs from the sender's: start the full exchange (as costly as a reply, so it draws on the same budget). */
  private onSyncDigest(theirs: StateDigest, fromAddress: string, fromId: string): void {
    if (sameDigest(theirs, this.digest())) {
      this.counters.syncDigestsMatched++;
      return;
    }
    if (!this.syncReplies.tryTake(this.scheduler.clock.now())) {
      this.counters.syncRepliesThrottled++;
      return;
    }
    this.sendSync(fromAddress, true, fromId);
  }

  /** `toId` undefined: a seed we know only by its address (a join), the one packet a keyed node sends unbound. */
  private sendSync(address: string, wantsReply: boolean, toId: string | undefined): void {
    this.counters.syncRequestsSent++;
    this.fullStateChunks((members, first) =>
      this.send({ type: 'sync', from: this.me.nodeId, wantsReply: wantsReply && first, members }, address, toId),
    );
  }

  private replySync(address: string, toId: string): void {
    if (!this.syncReplies.tryTake(this.scheduler.clock.now())) {
      this.counters.syncRepliesThrottled++;
      return;
    }
    this.counters.syncRepliesSent++;
    this.fullStateChunks((members) => this.send({ type: 'sync-reply', from: this.me.nodeId, members }, address, toId));
  }

  /** Full state split into packets under maxPacketBytes; each chunk merges on its own. */
  private fullStateChunks(emit: (members: MemberRecord[], first: boolean) => void): void {
    const records = [this.me, ...this.table.all()].map(toRecord);
    const base = encodeMessage({ type: 'sync', from: this.me.nodeId, wantsReply: true, members: [] }, this.keyring, undefined, this.label).length;
    const budget = this.limits.maxPacketBytes - base - ARRAY_HEADER_GROWTH_BYTES;
    chunkBySize(records, budget, encodedRecordBytes).forEach((chunk, i) => emit(chunk, i === 0));
  }

  private sendWithPiggyback(message: Extract<Message, { updates: readonly Update[] }>, address: string, toId: string | undefined, first?: Update): void {
    const base = encodeMessage(message, this.keyring, undefined, this.label).length;
    const budget = this.limits.maxPacketBytes - base - ARRAY_HEADER_GROWTH_BYTES - (first === undefined ? 0 : encodedUpdateBytes(first));
    const updates = this.broadcasts.take(Math.max(0, budget), this.transmitLimit(), first);
    this.send({ ...message, updates }, address, toId);
  }

  /** The next packet's stamp; a new epoch once the u32 sequence is used up (receivers take it: its time is later). */
  private nextStamp(): Stamp {
    if (this.packetsStamped >= 0xffff_ffff) {
      this.epoch = (this.epoch % 0x7fff_ffff) + 1;
      this.packetsStamped = 0;
    }
    return { epoch: this.epoch, seq: ++this.packetsStamped, ts: this.wallClock.now() };
  }

  /** `toId`: the member the packet is for, which a signed packet is bound to (see packet.ts). */
  private send(message: Message, address: string, toId: string | undefined): void {
    const stamp = this.keyring === undefined ? undefined : this.nextStamp();
    const bytes = encodeMessage(message, this.keyring, stamp, this.label, toId);
    if (bytes.length > this.limits.maxPacketBytes) return countDrop(this.counters, 'outgoingOversize');
    this.counters.packetsSent++;
    this.counters.bytesSent += bytes.length;
    this.transport.send(bytes, address);
  }

  // ---- join / leave ------------------------------------------------------------------------

  private waitForSyncReply(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        cancel();
        this.joinWaiters.delete(done);
        resolve();
      };
      const cancel = this.scheduler.after(ms, done, true);
      this.joinWaiters.add(done);
    });
  }

  private async announceLeave(): Promise<void> {
    this.leaving = true;
    this.me.incarnation++;
    this.me.state = 'left';
    const left: Update = { kind: 'left', nodeId: this.me.nodeId, generation: this.me.generation, incarnation: this.me.incarnation };
    this.queueBroadcast(left);
    // Tell every live member directly (bounded by maxMembers), then keep gossiping a moment.
    for (const peer of this.table.live()) this.send({ type: 'gossip', from: this.me.nodeId, updates: [left] }, peer.address, peer.nodeId);
    await new Promise<void>((resolve) => this.scheduler.after(this.timings.leavePropagateMs, resolve, true));
  }

}

/**
 * The sender telling of itself from the address it names (loopback sources are host:port):
 * a member can always introduce itself, whatever else its packets carried — a push-pull that
 * relays many unproven members (a flood it learned from a seed) once put the sender's own
 * record past its source's cap, and the new member never appeared.
 */
function selfIntroduction(u: Update, fromId: string, source: string): boolean {
  return u.kind === 'alive' && u.nodeId === fromId && sourceKey(u.address) === source;
}
