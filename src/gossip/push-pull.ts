import { invalidArgument, RingLimitError } from '../common/errors.js';
import type { Rng } from '../common/rng.js';
import { parseSeed } from './address.js';
import { chunkBySize } from './chunks.js';
import type { SwimLimits, SwimTimings } from './defaults.js';
import { sameDigest, stateDigest } from './digest.js';
import type { ResolveHost } from './dns-resolver.js';
import { toRecord, type MemberEntry, type MemberTable } from './member-table.js';
import { encodedRecordBytes } from './message-codec.js';
import type { MemberRecord, StateDigest } from './messages.js';
import { ARRAY_HEADER_GROWTH_BYTES, type PacketIo } from './packet-io.js';
import { RateWindow } from './rate-window.js';
import type { Scheduler } from './scheduler.js';
import { resolveSeedAddresses } from './seeds.js';
import type { SwimStats } from './stats.js';

/** What push-pull needs from the membership around it. */
export interface PushPullComponents {
  /** Our own entry (its fields change as we refute and update). */
  readonly me: MemberEntry;
  readonly table: MemberTable;
  readonly io: PacketIo;
  readonly counters: SwimStats;
  readonly rng: Rng;
  readonly scheduler: Scheduler;
  readonly limits: SwimLimits;
  readonly timings: SwimTimings;
  readonly resolveHost: ResolveHost;
  isRunning(): boolean;
  /** Merges a peer's full state (MemberNews.mergeState). */
  mergeState(records: readonly MemberRecord[], sender: string, source: string): void;
  /** A seed we asked answered from the address we asked (MemberNews.proveSeed). */
  proveSeed(records: readonly MemberRecord[], seedId: string, fromAddress: string): void;
}

/**
 * Anti-entropy: the periodic push-pull with one member (a digest first, the full state both
 * ways only when the views differ), the join (our full state to the seeds until one answers),
 * and the bound on the full-state answers we send (maxSyncRepliesPerSecond).
 */
export class PushPull {
  private readonly syncReplies: RateWindow;
  /** Seed addresses of the current join: one that answers our Sync proves itself (MemberTable.markProven). Bounded by maxSeeds' resolution. */
  private readonly seedsAsked = new Set<string>();
  private readonly joinWaiters = new Set<() => void>();
  private syncRepliesReceived = 0;

  constructor(private readonly components: PushPullComponents) {
    this.syncReplies = new RateWindow(components.limits.maxSyncRepliesPerSecond);
  }

  /**
   * Anti-entropy with one member; recently failed ones too, which is how partitions heal.
   * It opens with a digest of our live view: the full state (about 72 bytes a member) goes
   * both ways only when the peer's view differs.
   */
  tick(): void {
    const { table, rng, counters, io, me } = this.components;
    // While the table holds members nobody proved (a flood's, mostly unreachable), every other
    // exchange is with a proven member: a random pick would nearly always be an invented one,
    // and a real member's news would reach us only by chance.
    const diluted = table.provenCount < table.liveCount && rng.int(2) === 0;
    const proven = diluted ? table.randomProven((n) => rng.int(n)) : undefined;
    const candidates = proven === undefined ? table.all().filter((e) => e.state !== 'left') : [proven];
    const peer = candidates[rng.int(candidates.length)];
    if (peer === undefined) return;
    counters.syncDigestsSent++;
    io.send({ type: 'sync-digest', from: me.nodeId, digest: this.digest() }, peer.address, peer.nodeId);
  }

  /**
   * A join: sends our full state to every address the seeds resolve to (but `ownAddresses`)
   * until one answers or joinTimeoutMs passes, with backoff. Resolves with the number of
   * addresses contacted, 0 when the seeds are only ourselves (a one-node cluster).
   */
  async join(seeds: readonly string[], ownAddresses: readonly string[]): Promise<number> {
    const { limits, timings, scheduler, rng } = this.components;
    if (seeds.length === 0) return 0;
    if (seeds.length > limits.maxSeeds) throw invalidArgument('seeds', `at most ${limits.maxSeeds} seeds, got ${seeds.length}`);
    const parsed = seeds.map((s, i) => {
      const hp = parseSeed(s);
      if (hp === undefined) throw invalidArgument(`seeds[${i}]`, `must be host:port with port 1..65535, got ${JSON.stringify(s)}`);
      return hp;
    });
    const deadlineMs = scheduler.clock.now() + timings.joinTimeoutMs;
    let backoffMs = timings.joinBackoffInitialMs;
    let lastTried: string[] = [];
    for (let attempt = 0; attempt < limits.maxJoinAttempts && this.components.isRunning(); attempt++) {
      const targets = await resolveSeedAddresses(parsed, this.components.resolveHost, ownAddresses, limits.maxSeeds);
      if (targets.resolvedAny && targets.addresses.length === 0) return 0;
      lastTried = targets.addresses;
      this.seedsAsked.clear();
      for (const address of targets.addresses.slice(0, limits.maxSeeds)) this.seedsAsked.add(address);
      const before = this.syncRepliesReceived;
      for (const address of targets.addresses) this.sendSync(address, true, undefined);
      const waitMs = Math.min(backoffMs, Math.max(0, deadlineMs - scheduler.clock.now()));
      await this.waitForReply(waitMs + rng.int(Math.max(1, Math.floor(waitMs / 4))));
      if (this.syncRepliesReceived > before) return targets.addresses.length;
      if (scheduler.clock.now() >= deadlineMs) break;
      backoffMs = Math.min(timings.joinBackoffMaxMs, backoffMs * 2);
    }
    throw new RingLimitError('UNAVAILABLE', `join: no seed answered within ${timings.joinTimeoutMs} ms (tried ${lastTried.join(', ') || 'no resolvable address'})`, 'seeds');
  }

  /** A peer's full state, and whether it wants ours back. */
  onSync(members: readonly MemberRecord[], fromId: string, fromAddress: string, source: string, wantsReply: boolean): void {
    this.components.mergeState(members, fromId, source);
    if (wantsReply) this.replySync(fromAddress, fromId);
  }

  /** The answer to a Sync of ours: a join's, or a push-pull's. */
  onSyncReply(members: readonly MemberRecord[], fromId: string, fromAddress: string, source: string): void {
    if (this.seedsAsked.has(fromAddress)) this.components.proveSeed(members, fromId, fromAddress);
    this.components.mergeState(members, fromId, source);
    this.syncRepliesReceived++;
    this.wakeJoin();
  }

  /** Our view differs from the sender's: start the full exchange (as costly as a reply, so it draws on the same budget). */
  onSyncDigest(theirs: StateDigest, fromAddress: string, fromId: string): void {
    const { counters, scheduler } = this.components;
    if (sameDigest(theirs, this.digest())) {
      counters.syncDigestsMatched++;
      return;
    }
    if (!this.syncReplies.tryTake(scheduler.clock.now())) {
      counters.syncRepliesThrottled++;
      return;
    }
    this.sendSync(fromAddress, true, fromId);
  }

  /** Ends a join's wait for an answer at stop. */
  close(): void {
    this.wakeJoin();
    this.joinWaiters.clear();
  }

  /** Resolves after `ms`, or as soon as a full-state answer arrives. */
  private waitForReply(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        cancel();
        this.joinWaiters.delete(done);
        resolve();
      };
      const cancel = this.components.scheduler.after(ms, done, true);
      this.joinWaiters.add(done);
    });
  }

  private wakeJoin(): void {
    for (const wake of this.joinWaiters) wake();
  }

  private digest(): StateDigest {
    return stateDigest(this.components.me, this.components.table.liveView());
  }

  /** `toId` undefined: a seed we know only by its address (a join), the one packet a keyed node sends unbound. */
  private sendSync(address: string, wantsReply: boolean, toId: string | undefined): void {
    const { counters, io, me } = this.components;
    counters.syncRequestsSent++;
    this.fullStateChunks((members, first) => io.send({ type: 'sync', from: me.nodeId, wantsReply: wantsReply && first, members }, address, toId));
  }

  private replySync(address: string, toId: string): void {
    const { counters, io, me, scheduler } = this.components;
    if (!this.syncReplies.tryTake(scheduler.clock.now())) {
      counters.syncRepliesThrottled++;
      return;
    }
    counters.syncRepliesSent++;
    this.fullStateChunks((members) => io.send({ type: 'sync-reply', from: me.nodeId, members }, address, toId));
  }

  /** Full state split into packets under maxPacketBytes; each chunk merges on its own. */
  private fullStateChunks(emit: (members: MemberRecord[], first: boolean) => void): void {
    const { io, me, table, limits } = this.components;
    const records = [me, ...table.all()].map(toRecord);
    const base = io.bareBytes({ type: 'sync', from: me.nodeId, wantsReply: true, members: [] });
    const budget = limits.maxPacketBytes - base - ARRAY_HEADER_GROWTH_BYTES;
    chunkBySize(records, budget, encodedRecordBytes).forEach((chunk, i) => emit(chunk, i === 0));
  }
}
