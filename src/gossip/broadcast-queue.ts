import type { Update } from './messages.js';

interface Queued {
  readonly update: Update;
  readonly bytes: number;
  transmits: number;
  readonly order: number;
}

/**
 * Updates waiting to be piggybacked. One entry per node (newer news about a node replaces
 * older), least-transmitted first, each sent at most `limit` times; bounded in entries.
 */
export class BroadcastQueue {
  private readonly byNode = new Map<string, Queued>();
  private order = 0;
  evicted = 0;

  constructor(private readonly maxBroadcasts: number) {}

  get size(): number {
    return this.byNode.size;
  }

  enqueue(update: Update, bytes: number): void {
    this.byNode.delete(update.nodeId);
    if (this.byNode.size >= this.maxBroadcasts) this.evictMostTransmitted();
    this.byNode.set(update.nodeId, { update, bytes, transmits: 0, order: this.order++ });
  }

  /** Pick updates that fit in `budgetBytes`, counting one transmission each. */
  take(budgetBytes: number, transmitLimit: number, first?: Update): Update[] {
    const picked: Update[] = [];
    let left = budgetBytes;
    if (first !== undefined) {
      picked.push(first);
      const queued = this.byNode.get(first.nodeId);
      if (queued !== undefined && queued.update === first) this.countTransmit(queued, transmitLimit);
    }
    const candidates = [...this.byNode.values()].sort((a, b) => a.transmits - b.transmits || b.order - a.order);
    for (const q of candidates) {
      if (q.bytes > left || picked.includes(q.update)) continue;
      picked.push(q.update);
      left -= q.bytes;
      this.countTransmit(q, transmitLimit);
    }
    return picked;
  }

  private countTransmit(q: Queued, limit: number): void {
    q.transmits++;
    if (q.transmits >= limit && this.byNode.get(q.update.nodeId) === q) this.byNode.delete(q.update.nodeId);
  }

  private evictMostTransmitted(): void {
    let worst: Queued | undefined;
    for (const q of this.byNode.values()) {
      if (worst === undefined || q.transmits > worst.transmits || (q.transmits === worst.transmits && q.order < worst.order)) worst = q;
    }
    if (worst !== undefined) {
      this.byNode.delete(worst.update.nodeId);
      this.evicted++;
    }
  }
}
