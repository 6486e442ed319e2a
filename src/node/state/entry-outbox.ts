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
/** Event-loop time a walk may take per turn before it yields. */
export const WALK_TURN_BUDGET_MS = 4;

/**
 * The share of a member's time a background walk (the resync after a ring change) may take:
 * after each turn's work it rests three times as long. A ring change walks every key on every
 * member at once, while the traffic of the keys that moved arrives; measured through a leave,
 * the walks took 15 % of a member's samples within a second and the cluster's rate fell to a
 * tenth. Spread out, they delay only the new replicas' copies, by a few seconds.
 */
const WALK_BUSY_SHARE = 0.25;

/**
 * Runs `chunk(from, to)` over the store's slots, WALK_STEP_SLOTS at a time, yielding the
 * event loop once a turn has taken WALK_TURN_BUDGET_MS or `slotsPerTurn` slots (a ring change
 * may walk a million keys, and a key's work varies: lookups, encoding), then resting so that
 * the walk takes at most WALK_BUSY_SHARE of the time; stops once `cancelled()`. `done` runs
 * after the last chunk of a walk that was not cancelled.
 */
export function walkStoreInTurns(
  store: LimiterStore,
  slotsPerTurn: number,
  chunk: (fromSlot: number, toSlot: number) => void,
  cancelled: () => boolean,
  done?: () => void,
): void {
  const step = (from: number): void => {
    if (cancelled()) return;
    const startedMs = performance.now();
    const limit = from + slotsPerTurn;
    let at = from;
    while (at < store.slotCount && at < limit) {
      const to = Math.min(at + WALK_STEP_SLOTS, limit);
      chunk(at, to);
      at = to;
      if (performance.now() - startedMs >= WALK_TURN_BUDGET_MS) break;
    }
    if (at >= store.slotCount) {
      done?.();
      return;
    }
    const restMs = ((performance.now() - startedMs) * (1 - WALK_BUSY_SHARE)) / WALK_BUSY_SHARE;
    if (restMs < 1) setImmediate(step, at);
    else setTimeout(step, restMs, at).unref();
  };
  step(0);
}

/**
 * Entries a paced walk gathers before it sends them (unless its turn ends first): with a
 * chunk per 1,024 slots, a push after a join sent frames of ~200 entries and waited for each
 * ack — a hundred round trips to a busy new owner for 67k slots, a second or more.
 */
const PACED_CHUNK_ENTRIES = 512;

/**
 * A walk like walkStoreInTurns that gathers (`collect`) until PACED_CHUNK_ENTRIES wait
 * (`gathered`), its turn is over or the store is walked, then sends them (`send`, in the same
 * turn) and, if it sent frames, waits until resume() is called (their acks came back) or
 * `waitMs` passed: a receiver then holds at most one chunk's frames ahead of the live
 * traffic queued behind them on the same stream.
 */
export class PacedWalk {
  private at = 0;
  private waiting = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly step = (): void => {
    if (this.cancelled()) return;
    const startedMs = performance.now();
    while (this.at < this.store.slotCount) {
      const to = Math.min(this.at + WALK_STEP_SLOTS, this.store.slotCount);
      this.collect(this.at, to);
      this.at = to;
      const turnOver = performance.now() - startedMs >= WALK_TURN_BUDGET_MS;
      if (!turnOver && this.at < this.store.slotCount && this.gathered() < PACED_CHUNK_ENTRIES) continue;
      if (this.send()) {
        this.waiting = true;
        this.timer = setTimeout(this.resume, this.waitMs);
        return;
      }
      if (turnOver) {
        setImmediate(this.step);
        return;
      }
    }
    this.done();
  };

  /** Continues the walk (a chunk's frames were acked). */
  readonly resume = (): void => {
    if (!this.waiting) return;
    this.waiting = false;
    clearTimeout(this.timer);
    setImmediate(this.step);
  };

  constructor(
    private readonly store: LimiterStore,
    /** Gathers what slots [from, to) hold to send. */
    private readonly collect: (fromSlot: number, toSlot: number) => void,
    /** Entries gathered and not sent yet. */
    private readonly gathered: () => number,
    /** Sends what was gathered; returns whether it sent frames to wait for. */
    private readonly send: () => boolean,
    private readonly cancelled: () => boolean,
    private readonly done: () => void,
    private readonly waitMs: number,
  ) {}

  start(): void {
    this.step();
  }

  stop(): void {
    this.waiting = false;
    clearTimeout(this.timer);
  }
}
