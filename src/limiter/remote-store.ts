import type { ResolvedParams } from './types.js';

/** What a shared store answers for one decision; times are on the store's clock. */
export interface RemoteDecision {
  allowed: boolean;
  remaining: number;
  resetAtMs: number;
  retryAfterMs: number;
  waitMs: number;
  /** The store's clock when it decided: the caller moves resetAtMs onto its own clock with it. */
  nowMs: number;
}

/** A key as an operator's call finds it; times on the store's clock. */
export interface RemoteInspection {
  remaining: number;
  resetAtMs: number;
  nowMs: number;
}

/** What a store counts: its round trips (one per batch), the decisions they carried, and the calls that failed. */
export interface RemoteStoreStats {
  calls: number;
  decisions: number;
  failedCalls: number;
}

/**
 * A store that keeps the limiter's state outside the process (Redis: `ringlimit/redis`) and
 * runs the same algorithms there, atomically per key. The limiter resolves and validates
 * requests; the store only decides.
 */
export interface RemoteStore {
  /** A short name for errors and stats, e.g. "redis". */
  readonly name: string;
  /**
   * Decides `p` (validated) as a plain allow when maxWaitMs < 0, else as a reservation.
   * Reads `p` before it returns: the caller may reuse the object at once. Rejects with a
   * RingLimitError (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED) when it cannot answer,
   * and with FAILED_PRECONDITION when it refuses the request itself (a key in use described
   * with another shape, docs/request-shape.md): the limiter passes that one to the caller.
   */
  decide(p: Readonly<ResolvedParams>, maxWaitMs: number): Promise<RemoteDecision>;
  /**
   * An operator's call on `p`'s key: 'inspect' reads it as a request of cost 0 would find it,
   * changing nothing; 'set' gives it a state in which `remaining` (validated) units could be
   * taken now, then inspects it. Not batched: operators call rarely.
   */
  admin(op: 'inspect' | 'set', p: Readonly<ResolvedParams>, remaining: number): Promise<RemoteInspection>;
  stats(): RemoteStoreStats;
  close(): Promise<void>;
}
