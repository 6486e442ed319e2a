import type { LimiterStore } from '../limiter/store.js';
import type { FrameIds } from './frame-ids.js';
import type { PeerTransport } from './transport/peer-transport.js';
import { encodeFrame, frameLimits } from './wire/codec.js';
import { FrameType, type WireEntry } from './wire/frames.js';

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
    const { transport, ids } = this.components;
    for (const [address, entries] of this.byAddress) {
      for (let start = 0; start < entries.length; start += this.maxEntriesPerFrame) {
        const chunk = entries.slice(start, start + this.maxEntriesPerFrame);
        const id = ids.take();
        if (transport.send(address, encodeFrame({ type, id, entries: chunk }))) {
          sentIds?.push(id);
          entriesSent += chunk.length;
        }
      }
    }
    this.byAddress.clear();
    return entriesSent;
  }
}

/**
 * Runs `chunk(from, to)` over the store's slots, `slotsPerTurn` slots per event-loop turn so
 * the loop keeps turning (a ring change may walk a million keys); stops once `cancelled()`.
 * `done` runs after the last chunk of a walk that was not cancelled.
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
    const to = from + slotsPerTurn;
    chunk(from, to);
    if (to < store.slotCount) setImmediate(step, to);
    else done?.();
  };
  step(0);
}
