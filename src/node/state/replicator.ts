import type { Clock } from '../../common/clock.js';
import { STATE_STRIDE } from '../../limiter/algorithms/index.js';
import type { LimiterStore } from '../../limiter/store.js';
import type { AlgorithmId } from '../../limiter/types.js';
import { SenderVerdict, type ClusterView, type RingSnapshot } from '../routing/cluster-view.js';
import { WakeTimer } from '../../common/wake-timer.js';
import { EntryOutbox, PacedWalk, requireRoutingHash } from './entry-outbox.js';
import { LatencyHistogram } from '../../common/latency.js';
import { NO_ACK, type AckReceiver, type FrameIds } from '../wire/frame-ids.js';
import { fromWireEntry, toWireEntry } from '../wire/state-wire.js';
import type { PeerTransport, Reply } from '../transport/peer-transport.js';
import { encodeFrame } from '../wire/codec.js';
import { FrameType, type WireEntry } from '../wire/frames.js';

export interface ReplicatorComponents {
  store: LimiterStore;
  view: ClusterView;
  transport: PeerTransport;
  clock: Clock;
  ids: FrameIds;
}

export interface ReplicatorInit {
  selfId: string;
  replicas: number;
  replicationDelayMs: number;
  /** While fewer than replicationMinBatch changes wait, flushes wait for more up to this long after the first change. */
  replicationMaxDelayMs: number;
  replicationMinBatch: number;
  /** Entries per frame. */
  maxBatchSize: number;
  /** How long flushAndWait() waits for an ack before giving the frame up. */
  ackTimeoutMs: number;
  /** Slots examined per event-loop turn when re-sending everything after a ring change. */
  resyncSlotsPerTurn: number;
}

export interface ReplicatorStats {
  entriesSent: number;
  framesSent: number;
  acks: number;
  entriesReceived: number;
  /** Received entries dropped: their sender holds no copy of the key by the ring. */
  entriesRefused: number;
  /** Entries queued by resyncs after ring changes (to holders new since the last resync). */
  resyncEntriesSent: number;
}

/** A resync that could not reach every new holder walks again after this long, at most RESYNC_MAX_RETRIES times per ring. */
const RESYNC_RETRY_MS = 500;
const RESYNC_MAX_RETRIES = 20;
/** A resync chunk's acks are awaited this long at most before the walk goes on (an old node acks every frame; a lost ack costs this). */
const RESYNC_ACK_WAIT_MS = 250;
/** The share of a member's time the resync walk may take (unrested walks took 15 % of a member's samples through a leave). */
const RESYNC_BUSY_SHARE = 0.25;

/** Replicate frames whose ack is awaited to measure the lag, at most. */
const MAX_LAG_PROBES = 64;
/**
 * A flush asks for the ack of its first frame (a lag probe) at most this often; its other
 * frames, and those of flushes in between, ask for none (NO_ACK).
 */
const LAG_PROBE_GAP_MS = 100;

interface AckWaiter {
  remaining: number;
  deadlineMs: number;
  done: () => void;
}

/**
 * The replication protocol, both ends. Sending: each changed key's state goes to the next
 * `replicas` distinct nodes after its owner, batched — a flush every replicationDelayMs
 * drains the store's change list; with sync replication a decision waits in
 * flushAndWait() until every replica acked. Receiving: a replica takes the owner's state
 * (merged with anything it decided itself) and acks the frame.
 */
export class Replicator implements AckReceiver {
  readonly stats: ReplicatorStats = { entriesSent: 0, framesSent: 0, acks: 0, entriesReceived: 0, entriesRefused: 0, resyncEntriesSent: 0 };
  /** Flushes every replicationDelayMs while there are changes; disarmed on an idle node. */
  private readonly timer: WakeTimer | undefined;
  private readonly outbox: EntryOutbox;
  private readonly holders: string[] = [];
  /** Frame id → the flush waiting for its ack; in send order, so deadlines are ordered too. */
  private readonly waiters = new Map<number, AckWaiter>();
  private readonly sentIds: number[] = [];
  private readonly cells = new Float64Array(STATE_STRIDE);
  private nowMs = 0;
  /**
   * Replication lag: from the first change after a flush to the ack of the first frame that
   * flush sent (the change waited for the flush, then crossed to the replica and back).
   */
  readonly lag = new LatencyHistogram();
  private changedAtMs = -1;
  /** Decisions that may have changed state since the last flush (quiet-owner batching counts these). */
  private changesSinceFlush = 0;
  private lastProbeAtMs = Number.NEGATIVE_INFINITY;
  /** Frame id → changedAtMs of its flush, in send order; at most MAX_LAG_PROBES. */
  private readonly lagProbes = new Map<number, number>();
  private resyncGeneration = 0;
  /** The ring as of the last completed resync: its holders have every key (undefined: none done yet, send all). */
  private resyncBaseline: RingSnapshot | undefined;
  private readonly baselineHolders: string[] = [];
  private resyncIncomplete = false;
  private resyncWalk: PacedWalk | undefined;
  /** Frames of the resync's last chunk not acked yet: the walk goes on when none is left. */
  private readonly resyncChunk = new Set<number>();
  private resyncRetries = 0;
  private resyncRetry: NodeJS.Timeout | undefined;
  private closed = false;

  /** Queues (action, key)'s state for each of its replicas. */
  private readonly collect = (action: string, key: string, algorithm: AlgorithmId, cells: Float64Array, base: number, hash: number): void => {
    this.queueForHolders(this.components.view.holdersOfHash(hash, this.holders), 0, action, key, algorithm, cells, base);
  };

  /** For a resync: (action, key)'s state for each holder it did not have on `resyncBaseline`. */
  private readonly collectNewHolders = (action: string, key: string, algorithm: AlgorithmId, cells: Float64Array, base: number, hash: number): void => {
    const { view } = this.components;
    // A key kept here only until it is pushed goes to its new owner by the push, and on from there.
    if (!view.decidesHere(action, key, hash) || view.heldUntilPushed(action, key, hash)) return;
    const count = view.holdersOfHash(hash, this.holders);
    const before = this.resyncBaseline === undefined ? 0 : view.holdersOnInto(this.resyncBaseline, action, key, this.baselineHolders, hash);
    // A holder whose address is not known yet: the resync walks again later.
    if (!this.queueForHolders(count, before, action, key, algorithm, cells, base)) this.resyncIncomplete = true;
  };

  /**
   * Queues the key's state for `this.holders[0..count)`, but this node and those among
   * `this.baselineHolders[0..before)` (they have it). False when a holder's address is unknown.
   */
  private queueForHolders(count: number, before: number, action: string, key: string, algorithm: AlgorithmId, cells: Float64Array, base: number): boolean {
    const { view } = this.components;
    let entry: WireEntry | undefined;
    let reachedAll = true;
    for (let i = 0; i < count; i++) {
      const nodeId = this.holders[i]!;
      if (nodeId === this.init.selfId) continue;
      let held = false;
      for (let j = 0; j < before && !held; j++) held = this.baselineHolders[j] === nodeId;
      if (held) continue;
      const address = view.addressOf(nodeId);
      if (address === undefined) {
        reachedAll = false;
        continue;
      }
      entry ??= toWireEntry(action, key, algorithm, cells, base, this.nowMs);
      this.outbox.add(address, entry);
    }
    return reachedAll;
  }

  constructor(
    private readonly components: ReplicatorComponents,
    private readonly init: ReplicatorInit,
  ) {
    requireRoutingHash(components.store);
    this.outbox = new EntryOutbox(components, init.maxBatchSize);
    if (init.replicas > 0) this.timer = new WakeTimer(() => this.tick(), Math.max(1, init.replicationDelayMs));
  }

  /** A decision here may have changed a key's state: it goes out with the next flush. */
  changed(): void {
    if (this.changedAtMs < 0) this.changedAtMs = this.components.clock.now();
    // A quiet owner's first change sleeps until its flush is due; a full batch wants the next period.
    if (++this.changesSinceFlush >= this.init.replicationMinBatch) this.timer?.wake();
    else this.timer?.wakeAfter(this.quietWaitMs());
  }

  /** How long a quiet owner's changes may wait for more (see tick). */
  private quietWaitMs(): number {
    return Math.max(this.init.replicationMaxDelayMs, this.init.replicationDelayMs);
  }

  // ---- sending ------------------------------------------------------------------------

  /**
   * The timer's turn, every replicationDelayMs while there is work: flushes, unless fewer
   * than replicationMinBatch decisions changed state since the last flush and the first of
   * them is younger than replicationMaxDelayMs (a quiet node: at 1,000 decisions/s over
   * three nodes a flush every 5 ms carried 1–2 entries, and its frame cost more than they
   * did). Decisions, not keys: a few keys decided often are not quiet, and what a crash can
   * lose stays under replicationMinBatch decisions or one replicationDelayMs of them.
   * Returns whether to come back.
   */
  private tick(): boolean {
    const pending = this.components.store.pendingChanges;
    const nowMs = this.components.clock.now();
    const waitedMs = nowMs - this.changedAtMs;
    if (pending > 0 && this.changesSinceFlush < this.init.replicationMinBatch && this.changedAtMs >= 0 && waitedMs < this.quietWaitMs()) {
      if (this.waiters.size === 0) {
        // Nothing to expire meanwhile: sleep until the flush is due, not one wake-up per period.
        this.timer?.wakeAfter(this.quietWaitMs() - waitedMs);
        return false;
      }
      this.nowMs = nowMs;
      this.expireWaiters();
      return true;
    }
    // After a flush the next change wakes the timer again; only a flushAndWait() awaiting acks keeps it going (to expire them).
    this.flush();
    return this.waiters.size > 0;
  }

  /** Sends every pending change now; nothing waits for the acks. Returns how many keys changed. */
  flush(): number {
    if (this.init.replicas === 0) return 0;
    this.nowMs = this.components.clock.now();
    const changed = this.components.store.drainChanges(this.collect);
    this.expireWaiters();
    const changedAtMs = this.changedAtMs;
    this.changedAtMs = -1;
    this.changesSinceFlush = 0;
    const sentIds = this.sentIds;
    sentIds.length = 0;
    const probing = changedAtMs >= 0 && this.nowMs - this.lastProbeAtMs >= LAG_PROBE_GAP_MS && this.lagProbes.size < MAX_LAG_PROBES;
    this.send(sentIds, probing ? 1 : 0);
    const probe = sentIds[0];
    if (probe !== undefined && this.components.ids.awaitAck(probe, this)) {
      this.lagProbes.set(probe, changedAtMs);
      this.lastProbeAtMs = this.nowMs;
    }
    return changed;
  }

  /** Sends every pending change now; settles when every replica acked it (or ackTimeoutMs passed). */
  flushAndWait(): Promise<void> {
    if (this.init.replicas === 0 || this.closed) return Promise.resolve();
    this.nowMs = this.components.clock.now();
    this.changedAtMs = -1; // what a decision waits for here shows in its own latency
    this.changesSinceFlush = 0;
    this.components.store.drainChanges(this.collect);
    this.expireWaiters();
    const sentIds = this.sentIds;
    sentIds.length = 0;
    this.send(sentIds);
    if (sentIds.length === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const waiter: AckWaiter = { remaining: 0, deadlineMs: this.nowMs + this.init.ackTimeoutMs, done: resolve };
      for (const id of sentIds) {
        if (!this.components.ids.awaitAck(id, this)) continue; // too many awaited: do not wait for this one
        this.waiters.set(id, waiter);
        waiter.remaining++;
      }
      if (waiter.remaining === 0) resolve();
      else this.timer?.wake(); // its flushes expire the waiter after ackTimeoutMs
    });
  }

  /**
   * After the ring changed, sends each key this node owns to its holders that did not hold
   * it on the ring of the last completed resync, a chunk of slots per turn: about
   * (replicas + 1)/N of the keys when one member joins or leaves, not all of them.
   * Replication otherwise sends only changes: a restarted or new node would never get a key
   * that has gone quiet (an exhausted key only sees rejections), and would take it over
   * empty when the node holding it dies next. A walk cut short by the next change keeps the
   * old baseline, so the next walk covers both changes.
   */
  resyncOwned(): void {
    if (this.init.replicas === 0) return;
    const generation = ++this.resyncGeneration;
    const target = this.components.view.currentRing;
    // Keys held while this node was not on the baseline ring came from elsewhere (a snapshot,
    // a handoff): no holder can be assumed to have them.
    if (this.resyncBaseline !== undefined && !this.resyncBaseline.has(this.init.selfId)) this.resyncBaseline = undefined;
    this.resyncIncomplete = false;
    clearTimeout(this.resyncRetry);
    this.resyncWalk?.stop();
    this.forgetResyncChunk();
    const sentIds: number[] = [];
    this.resyncWalk = new PacedWalk(
      this.components.store,
      {
        collect: (from, to) => {
          this.nowMs = this.components.clock.now();
          this.components.store.forEachEntry(this.collectNewHolders, from, to);
        },
        gathered: () => this.outbox.pending,
        send: () => {
          const gathered = this.outbox.pending;
          const before = this.stats.entriesSent;
          this.send(sentIds);
          const sent = this.stats.entriesSent - before;
          this.stats.resyncEntriesSent += sent;
          // Not all sent, or the last chunk's acks not all back (its wait ran out): walk again later.
          if (sent < gathered || this.resyncChunk.size > 0) this.resyncIncomplete = true;
          this.forgetResyncChunk();
          // Each chunk waits for its acks, so a new holder takes the copies a chunk at a time between its live traffic.
          for (const id of sentIds) if (this.components.ids.awaitAck(id, this)) this.resyncChunk.add(id);
          sentIds.length = 0;
          return this.resyncChunk.size > 0;
        },
        cancelled: () => generation !== this.resyncGeneration || this.closed,
        done: () => {
          if (!this.resyncIncomplete) {
            this.resyncBaseline = target;
            this.resyncRetries = 0;
            return;
          }
          // A holder had no address yet, or its stream took nothing: walk again in a moment (bounded).
          if (this.resyncRetries++ >= RESYNC_MAX_RETRIES) return;
          this.resyncRetry = setTimeout(() => {
            if (generation === this.resyncGeneration && !this.closed) this.resyncOwned();
          }, RESYNC_RETRY_MS);
          this.resyncRetry.unref();
        },
      },
      { ackWaitMs: RESYNC_ACK_WAIT_MS, busyShare: RESYNC_BUSY_SHARE, slotsPerTurn: this.init.resyncSlotsPerTurn },
    );
    this.resyncWalk.start();
  }

  /** Stops waiting for the acks of the resync's last chunk (the walk went on, or a new one began). */
  private forgetResyncChunk(): void {
    for (const id of this.resyncChunk) this.components.ids.forget(id);
    this.resyncChunk.clear();
  }

  onAck(frameId: number): void {
    if (this.resyncChunk.delete(frameId)) {
      if (this.resyncChunk.size === 0) this.resyncWalk?.resume();
      return;
    }
    const changedAtMs = this.lagProbes.get(frameId);
    if (changedAtMs !== undefined) {
      this.lagProbes.delete(frameId);
      this.lag.record(this.components.clock.now() - changedAtMs);
      return;
    }
    const waiter = this.waiters.get(frameId);
    if (waiter === undefined) return;
    this.stats.acks++;
    this.waiters.delete(frameId);
    if (--waiter.remaining === 0) waiter.done();
  }

  /** Sends the outbox; the first `acksWanted` frames ask for an ack (their ids into `sentIds`). */
  private send(sentIds?: number[], acksWanted?: number): void {
    this.stats.entriesSent += this.outbox.send(FrameType.Replicate, sentIds, acksWanted);
    this.stats.framesSent += this.outbox.lastFrames;
  }

  private expireWaiters(): void {
    for (const [id, changedAtMs] of this.lagProbes) {
      if (changedAtMs + this.init.ackTimeoutMs > this.nowMs) break;
      this.lagProbes.delete(id);
      this.components.ids.forget(id);
    }
    for (const [id, waiter] of this.waiters) {
      if (waiter.deadlineMs > this.nowMs) break;
      this.waiters.delete(id);
      this.components.ids.forget(id);
      if (--waiter.remaining === 0) waiter.done();
    }
  }

  // ---- receiving ----------------------------------------------------------------------

  /**
   * An owner's Replicate frame from `from`: a copy of each key it holds by the ring (others
   * are refused and counted), merged instead where this node believes it owns the key.
   */
  receive(frameId: number, entries: WireEntry[], from: string, reply: Reply): void {
    const { store, view, clock } = this.components;
    const nowMs = clock.now();
    for (const entry of entries) {
      const verdict = view.judgeSender(from, entry.action, entry.key);
      if (verdict === SenderVerdict.Refused) {
        this.stats.entriesRefused++;
        continue;
      }
      const cells = fromWireEntry(entry, nowMs, this.cells);
      // An owner merges what it hears conservatively; a replica takes the owner's word but never erases its own decisions.
      const mode = verdict === SenderVerdict.OwnedHere ? 'merge' : 'replica';
      store.importEntry(entry.action, entry.key, entry.algorithm as AlgorithmId, cells, 0, mode);
      // A state merged into a key this node owns goes on to its replicas with the next flush.
      if (mode === 'merge') this.changed();
      this.stats.entriesReceived++;
    }
    if (frameId !== NO_ACK) reply(encodeFrame({ type: FrameType.Ack, id: frameId }));
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.resyncRetry);
    this.resyncWalk?.stop();
    this.forgetResyncChunk();
    this.timer?.close();
    for (const [id, waiter] of this.waiters) {
      this.components.ids.forget(id);
      waiter.done();
    }
    this.waiters.clear();
    for (const id of this.lagProbes.keys()) this.components.ids.forget(id);
    this.lagProbes.clear();
  }
}
