import { systemClock, type Clock } from '../common/clock.js';
import { RingLimitError, invalidArgument } from '../common/errors.js';
import { NO_WAIT } from './algorithms/index.js';
import { Limiter, type AcquireOptions } from './limiter.js';
import type { Policies, PolicyDocument } from './policies.js';
import { RejectionCache } from './rejection-cache.js';
import { LatencyHistogram } from '../common/latency.js';
import type { RemoteDecision, RemoteStore, RemoteStoreStats } from './remote-store.js';
import type { Decision, RateLimitRequest, Reservation, ResolvedParams } from './types.js';
import { checkedRemaining, newResolvedParams } from './validate.js';

/**
 * What a decision does while the store cannot answer (down, slow past its deadline, or
 * overloaded): 'local' decides in this process with the in-memory core (each process
 * admits up to the limit on its own: at most N × limit with N processes), 'open' allows,
 * 'closed' refuses, 'throw' rejects with RingLimitError UNAVAILABLE (the middleware's
 * failOpen then decides).
 */
export type WhenUnavailable = 'local' | 'open' | 'closed' | 'throw';

export interface RemoteLimiterOptions {
  /** This process's clock: for the rejection cache, waits and reset times. Decisions use the store's clock. */
  clock: Clock;
  policies: PolicyDocument | Policies | undefined;
  whenUnavailable: WhenUnavailable;
  /** After the store failed, decide by whenUnavailable without calling it for this long; then try it again. */
  unavailableRetryMs: number;
  /** Refused keys remembered until their retry time (0: none); past it the oldest goes. */
  maxCachedRejections: number;
  /** Keys the local fallback (whenUnavailable 'local') holds. */
  maxLocalKeys: number;
  maxWaiting: number;
  defaultMaxWaitMs: number;
}

export const remoteLimiterDefaults: RemoteLimiterOptions = {
  clock: systemClock,
  policies: undefined,
  whenUnavailable: 'local',
  unavailableRetryMs: 1_000,
  maxCachedRejections: 100_000,
  maxLocalKeys: 100_000,
  maxWaiting: 10_000,
  defaultMaxWaitMs: 10_000,
};

export interface RemoteLimiterInit extends Partial<RemoteLimiterOptions> {
  store: RemoteStore;
}

export interface RemoteLimiterStats {
  decisions: number;
  allowed: number;
  rejected: number;
  /** Refusals answered from the rejection cache, with no store call. */
  cachedRejections: number;
  storeCalls: number;
  storeErrors: number;
  /** Decisions made by whenUnavailable. */
  fallbackDecisions: number;
  /** Whether the store is being skipped after a failure (until unavailableRetryMs has passed). */
  storeSkipped: boolean;
  waiting: number;
  /** The store's own counts: round trips, the decisions they carried, failed calls. */
  store: RemoteStoreStats;
}

const POLICIES = ['local', 'open', 'closed', 'throw'] as const;

function validate(o: RemoteLimiterOptions, store: RemoteStore | undefined): void {
  if (store === undefined || typeof store.decide !== 'function') throw invalidArgument('store', 'must be a RemoteStore, e.g. redisStore({ client }) from ringlimit/redis');
  if (!POLICIES.includes(o.whenUnavailable)) throw invalidArgument('whenUnavailable', `must be one of ${POLICIES.join(', ')}, got ${String(o.whenUnavailable)}`);
  const check = (name: 'unavailableRetryMs' | 'maxCachedRejections' | 'maxLocalKeys', min: number, max: number): void => {
    const v = o[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw invalidArgument(name, `must be an integer from ${min} to ${max}, got ${String(v)}`);
  };
  check('unavailableRetryMs', 1, 3_600_000);
  check('maxCachedRejections', 0, 10_000_000);
  check('maxLocalKeys', 1, 10_000_000);
}

/**
 * The limiter over a shared store (createLimiter({ store })): the same requests, policies,
 * load factor and answers as the in-memory Limiter, decided by the store, asynchronously.
 * Requests are validated here (a bad one rejects and reaches no store); refusals are cached
 * until their exact retry time; a failing store is handled by whenUnavailable.
 */
export class RemoteLimiter {
  readonly options: Readonly<RemoteLimiterOptions>;
  readonly store: RemoteStore;
  /** Resolves requests (policies, load factor, fair share), waits, and decides when the store cannot. */
  private readonly local: Limiter;
  private readonly rejections: RejectionCache;
  private readonly clock: Clock;
  private skipStoreUntilMs = -Infinity;
  /** Sampled time from a call to the store's answer (one in LATENCY_SAMPLE_EVERY). */
  readonly latency = new LatencyHistogram();
  private readonly counters = { decisions: 0, allowed: 0, rejected: 0, storeCalls: 0, storeErrors: 0, fallbackDecisions: 0 };

  constructor(init: RemoteLimiterInit) {
    const { store, ...rest } = init;
    const merged: RemoteLimiterOptions = { ...remoteLimiterDefaults, ...rest };
    validate(merged, store);
    this.options = merged;
    this.store = store;
    this.clock = merged.clock;
    this.local = new Limiter({
      clock: merged.clock,
      policies: merged.policies,
      maxKeys: merged.maxLocalKeys,
      maxWaiting: merged.maxWaiting,
      defaultMaxWaitMs: merged.defaultMaxWaitMs,
    });
    this.rejections = new RejectionCache(merged.maxCachedRejections);
  }

  /** Replaces the policies (validated first); cached refusals are dropped with the old limits. */
  setPolicies(policies: PolicyDocument | Policies | undefined): void {
    this.local.setPolicies(policies);
    this.rejections.clear();
  }

  get policies(): Policies | undefined {
    return this.local.policies;
  }

  setLoadFactor(factor: number): void {
    this.local.setLoadFactor(factor);
  }

  get loadFactor(): number {
    return this.local.loadFactor;
  }

  /** A decision with the fields of Limiter.allow (and waitMs: 0). */
  allow(request: RateLimitRequest): Promise<Reservation> {
    return this.decide(request, NO_WAIT);
  }

  async isAllowed(request: RateLimitRequest): Promise<boolean> {
    return (await this.decide(request, NO_WAIT)).allowed;
  }

  /** Takes capacity now for a caller that proceeds after waitMs (see Limiter.reserve). */
  reserve(request: RateLimitRequest, options: { maxWaitMs: number }): Promise<Reservation> {
    const maxWaitMs = options.maxWaitMs;
    if (typeof maxWaitMs !== 'number' || !(maxWaitMs >= 0 && maxWaitMs <= 86_400_000)) {
      return Promise.reject(invalidArgument('maxWaitMs', `must be a number from 0 to 86400000 (24 h), got ${String(maxWaitMs)}`));
    }
    return this.decide(request, maxWaitMs);
  }

  /** Waits for a slot, as Limiter.acquire: the store reserves it, this process waits. */
  async acquire(request: RateLimitRequest, options: AcquireOptions = {}): Promise<Reservation> {
    const reservation = await this.reserve(request, { maxWaitMs: options.maxWaitMs ?? this.options.defaultMaxWaitMs });
    return this.local.waitFor(reservation, options.signal);
  }

  /** An operator's look at a key in the store: remaining and reset time now, consuming nothing. */
  inspect(request: RateLimitRequest): Promise<Decision> {
    return this.admin('inspect', request, undefined);
  }

  /** Gives a key its full allowance back in the store (e.g. after a support case). Returns the key as inspect() now sees it. */
  reset(request: RateLimitRequest): Promise<Decision> {
    return this.admin('set', request, undefined);
  }

  /** Puts a key's remaining in the store to `remaining` (0 to its capacity). Returns the key as inspect() now sees it. */
  setRemaining(request: RateLimitRequest, remaining: number): Promise<Decision> {
    return this.admin('set', request, remaining);
  }

  /** Validated like a decision (a bad request reaches no store); never answered by the fallback. */
  private admin(op: 'inspect' | 'set', request: RateLimitRequest, remaining: number | undefined): Promise<Decision> {
    let p: ResolvedParams;
    let target = 0;
    try {
      p = this.local.store.resolve({ ...request, cost: 0 }, newResolvedParams());
      if (op === 'set') target = checkedRemaining(p, remaining);
    } catch (error) {
      return Promise.reject(error);
    }
    // This process's cached refusal of the key no longer holds after a set (other processes' lapse at their retry time).
    if (op === 'set') this.rejections.forget(p);
    return this.store.admin(op, p, target).then((d) => {
      const resetAtMs = this.clock.now() + (d.resetAtMs - d.nowMs);
      return { allowed: d.remaining >= 1, limit: p.limit, remaining: d.remaining, resetAtMs, retryAfterMs: 0 };
    });
  }

  stats(): RemoteLimiterStats {
    return {
      ...this.counters,
      cachedRejections: this.rejections.hits,
      storeSkipped: this.clock.now() < this.skipStoreUntilMs,
      waiting: this.local.stats().waiting,
      store: this.store.stats(),
    };
  }

  /** Stops the local parts and the store's batching; the store's client stays the caller's to close. */
  async close(): Promise<void> {
    this.local.close();
    await this.store.close();
  }

  /** "Decide this here": every call goes through it. */
  private decide(request: RateLimitRequest, maxWaitMs: number): Promise<Reservation> {
    let p: ResolvedParams;
    try {
      p = this.local.store.resolve(request, newResolvedParams());
    } catch (error) {
      return Promise.reject(error);
    }
    const nowMs = this.clock.now();
    this.counters.decisions++;
    if (maxWaitMs < 0) {
      const cached = this.rejections.lookup(p, nowMs);
      if (cached !== undefined) {
        this.counters.rejected++;
        return Promise.resolve({ allowed: false, limit: p.limit, remaining: cached.remaining, resetAtMs: cached.resetAtMs, retryAfterMs: cached.untilMs - nowMs, waitMs: 0 });
      }
    }
    if (nowMs < this.skipStoreUntilMs) {
      try {
        return Promise.resolve(this.unavailable(request, p, maxWaitMs, undefined));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    this.counters.storeCalls++;
    const timed = this.latency.sample();
    return this.store.decide(p, maxWaitMs).then(
      (d) => this.answered(p, maxWaitMs, nowMs, d, timed),
      (error: unknown) => {
        // The store refused the request itself (a key in use described with another shape): that is the caller's answer, not a store failure.
        if (error instanceof RingLimitError && error.code === 'FAILED_PRECONDITION') throw error;
        return this.unavailable(request, p, maxWaitMs, error);
      },
    );
  }

  private answered(p: ResolvedParams, maxWaitMs: number, sentAtMs: number, d: RemoteDecision, timed: boolean): Reservation {
    const nowMs = this.clock.now();
    if (timed) this.latency.record(nowMs - sentAtMs);
    const resetAtMs = nowMs + (d.resetAtMs - d.nowMs);
    if (d.allowed) this.counters.allowed++;
    else {
      this.counters.rejected++;
      if (maxWaitMs < 0) this.rejections.remember(p, sentAtMs + d.retryAfterMs, d.remaining, resetAtMs);
    }
    return { allowed: d.allowed, limit: p.limit, remaining: d.remaining, resetAtMs, retryAfterMs: d.retryAfterMs, waitMs: d.waitMs };
  }

  private unavailable(request: RateLimitRequest, p: ResolvedParams, maxWaitMs: number, error: unknown): Reservation {
    const nowMs = this.clock.now();
    if (error !== undefined) {
      this.counters.storeErrors++;
      this.skipStoreUntilMs = nowMs + this.options.unavailableRetryMs;
    }
    this.counters.fallbackDecisions++;
    const policy = this.options.whenUnavailable;
    if (policy === 'throw') {
      const why = error instanceof Error ? error.message : `skipped for ${this.options.unavailableRetryMs} ms after a failure (unavailableRetryMs)`;
      throw new RingLimitError('UNAVAILABLE', `the ${this.store.name} store cannot decide: ${why}`);
    }
    let decision: Reservation;
    if (policy === 'local') {
      decision = maxWaitMs < 0 ? { ...this.local.allow(request), waitMs: 0 } : this.local.reserve(request, { maxWaitMs });
    } else if (policy === 'open') {
      decision = { allowed: true, limit: p.limit, remaining: p.limit, resetAtMs: nowMs, retryAfterMs: 0, waitMs: 0 };
    } else {
      decision = { allowed: false, limit: p.limit, remaining: 0, resetAtMs: nowMs + this.options.unavailableRetryMs, retryAfterMs: this.options.unavailableRetryMs, waitMs: 0 };
    }
    if (decision.allowed) this.counters.allowed++;
    else this.counters.rejected++;
    return decision;
  }
}
