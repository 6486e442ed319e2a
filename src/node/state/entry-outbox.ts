import type { LimiterStore } from '../../limiter/store.js';
import { routingHash } from '../routing/ring-keys.js';
import { NO_ACK, type FrameIds } from '../wire/frame-ids.js';
import type { PeerTransport } from '../transport/peer-transport.js';
import { encodeFrame, frameLimits } from '../wire/codec.js';
import { FrameType, type WireEntry } from '../wire/frames.js';

export interface EntryOutboxComponents {
  transport: PeerTransport;
  ids: FrameIds;
}

/**
 * Key states gathered per peer address, then sent in batches: the one place that groups,
 * chunks and sends Replicate and Handoff frames.
 */
export class EntryOutbox {
  private readonly byAddress = new Map<string, WireEntry[]>();
  private readonly maxEntriesPerFrame: number;
  /** Entries the last send() could not hand to the transport (their peer unreachable): dropped. */
  lastUnsent = 0;
  /** Frames the last send() handed to the transport. */
  lastFrames = 0;

  constructor(
    private readonly components: EntryOutboxComponents,
    maxBatchSize: number,
  ) {
    this.maxEntriesPerFrame = Math.min(maxBatchSize, frameLimits.maxItems);
  }

  /** Entries gathered and not yet sent. */
  get pending(): number {
    let n = 0;
    for (const list of this.byAddress.values()) n += list.length;
    return n;
  }

  add(address: string, entry: WireEntry): void {
    let list = this.byAddress.get(address);
    if (list === undefined) this.byAddress.set(address, (list = []));
    list.push(entry);
  }

  /**
   * Sends everything gathered as frames of `type`, at most maxBatchSize entries each, and
   * empties the outbox. The first `acksWanted` frames get ids (their ids, once the transport
   * took them, go into `sentIds`: the caller awaits their acks); the others carry NO_ACK and
   * are not acked. Returns how many entries were sent.
   */
  send(type: FrameType.Replicate | FrameType.Handoff, sentIds?: number[], acksWanted = sentIds === undefined ? 0 : Number.POSITIVE_INFINITY): number {
    let entriesSent = 0;
    this.lastUnsent = 0;
    this.lastFrames = 0;
    const { transport, ids } = this.components;
    for (const [address, entries] of this.byAddress) {
      for (let start = 0; start < entries.length; start += this.maxEntriesPerFrame) {
        const chunk = entries.slice(start, start + this.maxEntriesPerFrame);
        const id = acksWanted > 0 ? ids.take() : NO_ACK;
        if (id !== NO_ACK) acksWanted--;
        if (transport.send(address, encodeFrame({ type, id, entries: chunk }))) {
          if (id !== NO_ACK) sentIds?.push(id);
          this.lastFrames++;
          entriesSent += chunk.length;
        } else {
          this.lastUnsent += chunk.length;
        }
      }
    }
    this.byAddress.clear();
    return entriesSent;
  }
}

/**
 * The walks over a store (replication, handoff) read each key's place on the ring from the
 * store (StoreOptions.routingHash): a store without the ring's hash would place every key at 0.
 */
export function requireRoutingHash(store: LimiterStore): void {
  if (store.options.routingHash !== routingHash) throw new TypeError('a store walked for replication or handoff needs options.routingHash = routingHash (src/node/routing/ring-keys.ts)');
}

/** Slots per call of a walk's chunk; a turn runs calls until its time budget is spent. */
const WALK_STEP_SLOTS = 1_024;
/**
 * Event-loop time a walk may take per turn before it yields. Every request a member serves
 * while it walks waits up to a turn, and a ring change walks on every member at once: a
 * closed-loop caller at concurrency 64 loses most of its rate to 4 ms turns. With 1 ms the
 * leave's worst second in the change bench rose from 29-40 % to 41-52 % of the steady rate.
 */
export const WALK_TURN_BUDGET_MS = 1;

/**
 * Entries a paced walk gathers before it sends them (unless its turn ends first): with a
 * chunk per 1,024 slots, a push after a join sent frames of ~200 entries and waited for each
 * ack — a hundred round trips to a busy new owner for 67k slots, a second or more.
 */
const PACED_CHUNK_ENTRIES = 512;

export interface PacedWalkPacing {
  /** How long a chunk's acks are awaited before the walk goes on without them. */
  ackWaitMs: number;
  /**
   * The share of this member's time the walk may take: after each turn it rests until its
   * work is this share of the time since the turn began (1: no rest beyond the acks).
   */
  busyShare: number;
  /** Slots examined per turn at most (a ring change may walk a million keys). */
  slotsPerTurn: number;
}

export interface PacedWalkSteps {
  /** Gathers what slots [from, to) hold to send. */
  collect(fromSlot: number, toSlot: number): void;
  /** Entries gathered and not sent yet. */
  gathered(): number;
  /** Sends what was gathered; returns whether it sent frames whose acks to wait for (resume()). */
  send(): boolean;
  cancelled(): boolean;
  /** After the last chunk of a walk that was not cancelled. */
  done(): void;
}

/**
 * The walk over a store after a ring change (the push of moved keys, the resync of new
 * holders): each turn gathers (`collect`) until PACED_CHUNK_ENTRIES wait, the turn is over
 * (WALK_TURN_BUDGET_MS or `slotsPerTurn`) or the store is walked, then sends them in the same turn and, if it sent frames, waits until resume() is
 * called (their acks came back) or `ackWaitMs` passed. So a receiver holds at most one chunk's
 * frames per walk ahead of the live traffic queued behind them on the same stream: a new
 * member took ~50k entries at once after a join (its resync copies were not paced), and the
 * requests forwarded to it waited behind them while the cluster's rate fell to a twentieth.
 */
export class PacedWalk {
  private at = 0;
  private waiting = false;
  /** When the walk may take its next turn (busyShare). */
  private dueMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly step = (): void => {
    if (this.steps.cancelled()) return;
    const startedMs = performance.now();
    const slotCount = this.store.slotCount;
    const turnEnd = Math.min(this.at + this.pacing.slotsPerTurn, slotCount);
    let nowMs = startedMs;
    while (this.at < turnEnd && this.steps.gathered() < PACED_CHUNK_ENTRIES && nowMs - startedMs < WALK_TURN_BUDGET_MS) {
      const to = Math.min(this.at + WALK_STEP_SLOTS, turnEnd);
      this.steps.collect(this.at, to);
      this.at = to;
      nowMs = performance.now();
    }
    const sent = this.steps.send();
    // The turn's work includes encoding and sending what it gathered.
    this.dueMs = startedMs + (performance.now() - startedMs) / this.pacing.busyShare;
    if (sent) {
      this.waiting = true;
      this.timer = setTimeout(this.resume, this.pacing.ackWaitMs);
      return;
    }
    if (this.at < this.store.slotCount) this.next();
    else this.steps.done();
  };

  /** Continues the walk (a chunk's frames were acked, or their wait is over). */
  readonly resume = (): void => {
    if (!this.waiting) return;
    this.waiting = false;
    clearTimeout(this.timer);
    this.next();
  };

  constructor(
    private readonly store: LimiterStore,
    private readonly steps: PacedWalkSteps,
    private readonly pacing: PacedWalkPacing,
  ) {
    if (!(pacing.busyShare > 0 && pacing.busyShare <= 1)) throw new RangeError(`busyShare must be in (0, 1], got ${pacing.busyShare}`);
  }

  start(): void {
    this.step();
  }

  stop(): void {
    this.waiting = false;
    clearTimeout(this.timer);
  }

  private next(): void {
    const restMs = this.dueMs - performance.now();
    if (restMs < 1) setImmediate(this.step);
    else this.timer = setTimeout(this.step, restMs).unref();
  }
}
