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
   * RingLimitError (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED) when it cannot answer.
   */
  decide(p: Readonly<ResolvedParams>, maxWaitMs: number): Promise<RemoteDecision>;
  stats(): RemoteStoreStats;
  close(): Promise<void>;
}
