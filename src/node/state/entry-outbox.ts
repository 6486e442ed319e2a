import type { LimiterStore } from '../../limiter/store.js';
import type { FrameIds } from '../wire/frame-ids.js';
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
   * empties the outbox. Pushes the ids of the frames the transport took into `sentIds`;
   * returns how many entries they carried.
   */
  send(type: FrameType.Replicate | FrameType.Handoff, sentIds?: number[]): number {
    let entriesSent = 0;
    this.lastUnsent = 0;
    const { transport, ids } = this.components;
    for (const [address, entries] of this.byAddress) {
      for (let start = 0; start < entries.length; start += this.maxEntriesPerFrame) {
        const chunk = entries.slice(start, start + this.maxEntriesPerFrame);
        const id = ids.take();
        if (transport.send(address, encodeFrame({ type, id, entries: chunk }))) {
          sentIds?.push(id);
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

/** Slots per call of a walk's chunk; a turn runs calls until its time budget is spent. */
const WALK_STEP_SLOTS = 1_024;
/** Event-loop time a walk may take per turn before it yields. */
export const WALK_TURN_BUDGET_MS = 4;

/**
 * Runs `chunk(from, to)` over the store's slots, WALK_STEP_SLOTS at a time, yielding the
 * event loop once a turn has taken WALK_TURN_BUDGET_MS or `slotsPerTurn` slots (a ring change
 * may walk a million keys, and a key's work varies: lookups, encoding); stops once
 * `cancelled()`. `done` runs after the last chunk of a walk that was not cancelled.
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
    if (at < store.slotCount) setImmediate(step, at);
    else done?.();
  };
  step(0);
}
