import type { Calendar } from './calendar.js';
import type { ResolvedParams } from './types.js';

export interface CachedRejection {
  /** Local clock time before which the same request is certainly refused. */
  untilMs: number;
  algorithm: number;
  limit: number;
  windowMs: number;
  /** Interned: the same calendar is the same object. */
  calendar: Calendar | null;
  capacity: number;
  cost: number;
  remaining: number;
  resetAtMs: number;
}

/**
 * Keys refused by a shared store, remembered until their exact retry time, so a caller that
 * keeps hammering a blocked key costs no store call. Exact, not approximate: for all four
 * algorithms a key's allowance only grows with time and only shrinks with admissions, so a
 * request refused with retryAfterMs stays refused until then — for the same limits (a policy
 * or load-factor change misses the cache) and at least the same cost. The time is counted
 * from when the request was sent, before the store decided: never later than the truth.
 * Bounded: past maxEntries the oldest entry goes.
 */
export class RejectionCache {
  private readonly entries = new Map<string, CachedRejection>();
  hits = 0;

  constructor(private readonly maxEntries: number) {}

  get size(): number {
    return this.entries.size;
  }

  /** The cached refusal that holds for `p` at nowMs, or undefined. */
  lookup(p: Readonly<ResolvedParams>, nowMs: number): CachedRejection | undefined {
    if (this.entries.size === 0 || p.cost <= 0) return undefined;
    const id = idOf(p);
    const hit = this.entries.get(id);
    if (hit === undefined) return undefined;
    if (nowMs >= hit.untilMs) {
      this.entries.delete(id);
      return undefined;
    }
    if (p.cost < hit.cost || p.algorithm !== hit.algorithm || p.limit !== hit.limit || p.windowMs !== hit.windowMs || p.calendar !== hit.calendar || p.capacity !== hit.capacity) return undefined;
    this.hits++;
    return hit;
  }

  remember(p: Readonly<ResolvedParams>, untilMs: number, remaining: number, resetAtMs: number): void {
    if (this.maxEntries === 0 || p.cost <= 0) return;
    const id = idOf(p);
    this.entries.delete(id);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(id, { untilMs, algorithm: p.algorithm, limit: p.limit, windowMs: p.windowMs, calendar: p.calendar, capacity: p.capacity, cost: p.cost, remaining, resetAtMs });
  }

  /** Drops the refusal cached for p's key, when there is one (an operator changed the key). */
  forget(p: Readonly<ResolvedParams>): void {
    this.entries.delete(idOf(p));
  }

  clear(): void {
    this.entries.clear();
  }
}

function idOf(p: Readonly<ResolvedParams>): string {
  return `${p.action}\u0000${p.key}`;
}
