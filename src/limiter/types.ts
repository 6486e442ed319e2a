import type { Calendar, CalendarUnit } from './calendar.js';

/** The four algorithms. The numeric ids are stable: they travel in replicated state. */
export type Algorithm = 'token-bucket' | 'gcra' | 'sliding-window' | 'fixed-window';

export const ALGORITHMS: readonly Algorithm[] = ['token-bucket', 'gcra', 'sliding-window', 'fixed-window'];

export const enum AlgorithmId {
  TokenBucket = 0,
  Gcra = 1,
  SlidingWindow = 2,
  FixedWindow = 3,
}

/** One request shape serves every caller: the embedded API, the wire API and forwarding. */
export interface RateLimitRequest {
  /** Who is limited (a user id, an IP, a tenant). */
  key: string;
  /** What is limited; the limited unit is (action, key). Defaults to "default". */
  action?: string;
  /** Units allowed per window at weight 1. Required unless the policies give it. */
  limit?: number;
  /** Required unless the policies give it, or `calendar` is given instead. */
  windowMs?: number;
  /**
   * Calendar windows instead of windowMs: this minute, hour, day, week (from Monday),
   * month or year of `timeZone` (fixed-window and sliding-window only; see calendar.ts).
   */
  calendar?: CalendarUnit;
  /** The IANA time zone of `calendar` (e.g. "Europe/Paris"). Defaults to "UTC"; only with calendar. */
  timeZone?: string;
  /** The caller's group or tier (e.g. "free", "pro"), for the policies; a user the policies list keeps its own. */
  group?: string;
  /** Multiplies the limit (and burst): weight w gets w × the base limit. Defaults to 1. */
  weight?: number;
  /** Units this call takes. 0 peeks without consuming. Defaults to 1. */
  cost?: number;
  algorithm?: Algorithm;
  /** Bucket capacity for token-bucket and GCRA, before weighting. Defaults to the limit. */
  burst?: number;
  /**
   * Hot-key mode, in a cluster: every node answers this key from its local copy of the
   * owner's state and sends its hits to the owner in batches; the owner broadcasts the
   * authoritative state. Bounded over-admission for far less traffic to one node. A lone
   * node decides as usual. Defaults to false.
   */
  global?: boolean;
}

export interface Decision {
  allowed: boolean;
  /** The effective limit: floor(limit × weight). */
  limit: number;
  /** Units that could still be taken right now. */
  remaining: number;
  /** Clock time at which the key is back to its full allowance. */
  resetAtMs: number;
  /** 0 when allowed; otherwise exactly how long until this request would be allowed. */
  retryAfterMs: number;
}

/** Result of `reserve`: capacity is taken now and the caller proceeds after `waitMs`. */
export interface Reservation extends Decision {
  /** When `allowed`: how long the caller must wait before proceeding (0 = go now). */
  waitMs: number;
}

/** Request after validation and defaulting: everything the algorithms need, as numbers. */
export interface ResolvedParams {
  action: string;
  key: string;
  algorithm: AlgorithmId;
  /** Effective limit: floor(limit × weight). */
  limit: number;
  /** The window; with a calendar, the longest its period can be (calendar.ts longestPeriodMs). */
  windowMs: number;
  /** Calendar windows (an interned object: compare by reference), or null for fixed windowMs. */
  calendar: Calendar | null;
  /** Capacity for token-bucket and GCRA: floor((burst ?? limit) × weight). */
  capacity: number;
  cost: number;
  /** Hot-key mode (see RateLimitRequest.global); the core itself ignores it. */
  global: boolean;
}

/**
 * The state of one key: three plain numbers whose meaning depends on the algorithm
 * (see each algorithm file). Small and plain so it can be replicated and transferred.
 */
export interface LimiterState {
  algorithm: Algorithm;
  s0: number;
  s1: number;
  s2: number;
}

/** What the policies say for one (user, group, action): the fields they set (policies.ts). */
export interface ResolvedPolicy {
  limit: number | undefined;
  /** At most one of windowMs and calendar is set: the most specific rule's window. */
  windowMs: number | undefined;
  calendar: Calendar | undefined;
  algorithm: Algorithm | undefined;
  burst: number | undefined;
  weight: number | undefined;
}
