import type { Clock } from '../../common/clock.js';
import { routingKey } from './ring-keys.js';

interface Mark {
  nodeId: string;
  untilMs: number;
}

/**
 * Keys this node handed to another one on a pull (KeyPulls.answerPull): routed to that node
 * until the mark expires, even before this node's ring shows the change. A mark holds while
 * its node is a member, on this node's ring or not: a view that lags does not see the puller
 * active yet, and deciding the key here then would start a second count beside the puller's.
 */
export class HandedAwayMarks {
  private readonly marks = new Map<string, Mark>();

  constructor(
    private readonly clock: Clock,
    /** Bound on marks held. */
    private readonly maxKeys: number,
    /** Whether a node is a member now. */
    private readonly isMember: (nodeId: string) => boolean,
  ) {}

  get size(): number {
    return this.marks.size;
  }

  /** Routes (action, key) to `nodeId` until `untilMs`. Bounded: past maxKeys, no mark. */
  mark(action: string, key: string, nodeId: string, untilMs: number): void {
    if (this.marks.size < this.maxKeys) this.marks.set(routingKey(action, key), { nodeId, untilMs });
  }

  /** Where (action, key) was handed, if it was and still counts; no routing string is built while nothing is marked (nearly always). */
  handedTo(action: string, key: string): string | undefined {
    if (this.marks.size === 0) return undefined;
    const id = routingKey(action, key);
    const mark = this.marks.get(id);
    if (mark === undefined) return undefined;
    if (mark.untilMs < this.clock.now() || !this.isMember(mark.nodeId)) {
      this.marks.delete(id);
      return undefined;
    }
    return mark.nodeId;
  }

  /** Forgets the mark of (action, key) if it names `nodeId`; returns whether there was one. */
  release(action: string, key: string, nodeId: string): boolean {
    if (this.marks.size === 0) return false;
    const id = routingKey(action, key);
    return this.marks.get(id)?.nodeId === nodeId && this.marks.delete(id);
  }

  /** Forgets the marks that expired or whose node is gone. */
  dropStale(): void {
    const nowMs = this.clock.now();
    for (const [id, mark] of this.marks) if (mark.untilMs < nowMs || !this.isMember(mark.nodeId)) this.marks.delete(id);
  }
}
