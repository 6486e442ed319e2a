import { systemClock, type Clock } from '../common/clock.js';
import { RateLimitError, invalidArgument } from '../common/errors.js';
import { LimiterStore, storeDefaults, type StoreOptions, type StoreStats } from './store.js';
import type { Decision, RateLimitRequest, Reservation } from './types.js';
import { WaitQueue } from './waiters.js';
import { rateRequest, windowRequest } from './aliases.js';
import { Policies, type PolicyDocument } from './policies.js';
import { PolicyHandle, type PolicySpec } from './policy-handle.js';

export { limitFromRate } from './aliases.js';

export interface LimiterOptions extends StoreOptions {
  clock: Clock;
  /** How often the idle-key sweeper runs. */
  sweepIntervalMs: number;
  /** Slots the sweeper examines per run: bounded work per tick, never a full scan at once. */
  sweepSlotsPerTick: number;
  /** Callers that may wait in acquire() at once. */
  maxWaiting: number;
  /** acquire()'s longest wait when the caller names none. */
  defaultMaxWaitMs: number;
  /** Limits declared once, per action, group and user (policies.ts); replaced at runtime by setPolicies(). */
  policies: PolicyDocument | Policies | undefined;
}

export const limiterDefaults: LimiterOptions = {
  ...storeDefaults,
  clock: systemClock,
  sweepIntervalMs: 100,
  sweepSlotsPerTick: 10_000,
  maxWaiting: 10_000,
  defaultMaxWaitMs: 10_000,
  policies: undefined,
};

export interface AcquireOptions {
  /** Longest acceptable wait; a longer one is rejected at once with retryAfterMs. */
  maxWaitMs?: number;
  signal?: AbortSignal;
}

export interface LimiterStats extends StoreStats {
  waiting: number;
}

function validateLimiterOptions(o: LimiterOptions): void {
  if (typeof o.clock?.now !== 'function') throw invalidArgument('clock', 'must have a now() method');
  const check = (name: 'sweepIntervalMs' | 'sweepSlotsPerTick' | 'maxWaiting' | 'defaultMaxWaitMs', min: number, max: number): void => {
    const v = o[name];
    if (typeof v !== 'number' || !(v >= min && v <= max)) throw invalidArgument(name, `must be a number from ${min} to ${max}, got ${String(v)}`);
  };
  check('sweepIntervalMs', 1, 3_600_000);
  check('sweepSlotsPerTick', 1, 10_000_000);
  check('maxWaiting', 0, 10_000_000);
  check('defaultMaxWaitMs', 0, 86_400_000);
}

/** A local, in-process rate limiter: decisions are synchronous and exact. */
export class Limiter {
  readonly options: Readonly<LimiterOptions>;
  readonly store: LimiterStore;
  private readonly waiters: WaitQueue<Reservation>;
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(options: Partial<LimiterOptions> = {}) {
    const merged: LimiterOptions = { ...limiterDefaults, ...options };
    validateLimiterOptions(merged);
    this.options = merged;
    this.store = new LimiterStore(merged.clock, merged);
    this.waiters = new WaitQueue(merged.clock, merged.maxWaiting);
    if (merged.policies !== undefined) this.setPolicies(merged.policies);
    this.sweeper = setInterval(() => this.store.sweep(merged.sweepSlotsPerTick), merged.sweepIntervalMs);
    this.sweeper.unref();
  }

  /** Replaces the policies at once (validated first: a bad document throws and changes nothing); undefined removes them. */
  setPolicies(policies: PolicyDocument | Policies | undefined): void {
    this.store.policies = policies === undefined || policies instanceof Policies ? policies : new Policies(policies);
  }

  /**
   * Adaptive limits: scales every limit (and bucket) by `factor`, 0 < factor <= 1 — e.g. 0.5
   * while the protected service is degraded, 1 when it has recovered. Never below 1 unit.
   */
  setLoadFactor(factor: number): void {
    if (typeof factor !== 'number' || !(factor > 0 && factor <= 1)) throw invalidArgument('loadFactor', `must be a number above 0 and at most 1, got ${String(factor)}`);
    this.store.loadFactor = factor;
  }

  get loadFactor(): number {
    return this.store.loadFactor;
  }

  get policies(): Policies | undefined {
    return this.store.policies;
  }

  /**
   * A precompiled policy: its options are validated once, and each call then takes only
   * the key (and optionally weight and cost) — the fastest local path.
   * `const search = limiter.policy({ action: 'search', limit: 100, windowMs: 60_000 }); search.allow(userId)`.
   */
  policy(spec: PolicySpec): PolicyHandle {
    return new PolicyHandle(this.store, spec);
  }

  allow(request: RateLimitRequest): Decision {
    return this.store.allow(request);
  }

  /** The verdict alone; allocates nothing for a key already held. */
  isAllowed(request: RateLimitRequest): boolean {
    return this.store.isAllowed(request);
  }

  /** An operator's look at a key: remaining and reset time now, without consuming anything. */
  inspect(request: RateLimitRequest): Decision {
    return this.store.inspect(request);
  }

  /** Gives a key its full allowance back (e.g. after a support case). Returns the key as inspect() now sees it. */
  reset(request: RateLimitRequest): Decision {
    return this.store.setRemaining(request, undefined);
  }

  /** Puts a key's remaining to `remaining` (0 to its capacity). Returns the key as inspect() now sees it. */
  setRemaining(request: RateLimitRequest, remaining: number): Decision {
    return this.store.setRemaining(request, remaining);
  }

  /** Takes capacity now for a caller that proceeds after `waitMs`; see LimiterStore.reserve. */
  reserve(request: RateLimitRequest, options: { maxWaitMs: number }): Reservation {
    return this.store.reserve(request, options.maxWaitMs);
  }

  /**
   * Waits for a slot: resolves once the caller may proceed (allowed: true), or at once
   * with allowed: false and retryAfterMs when the wait would exceed maxWaitMs.
   */
  acquire(request: RateLimitRequest, options: AcquireOptions = {}): Promise<Reservation> {
    const refused = this.refuseWaiting();
    if (refused !== undefined) return Promise.reject(refused);
    let reservation: Reservation;
    try {
      reservation = this.store.reserve(request, options.maxWaitMs ?? this.options.defaultMaxWaitMs);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.waitFor(reservation, options.signal);
  }

  /**
   * The second half of acquire(): resolves when a granted reservation's wait has passed
   * (at once when it needs none, or was refused). Reservations made elsewhere (a cluster
   * node reserves at the key's owner) wait here too.
   */
  waitFor(reservation: Reservation, signal?: AbortSignal): Promise<Reservation> {
    if (!reservation.allowed || reservation.waitMs <= 0) return Promise.resolve(reservation);
    const refused = this.refuseWaiting();
    if (refused !== undefined) return Promise.reject(refused);
    return this.waiters.wait(this.options.clock.now() + reservation.waitMs, reservation, signal);
  }

  private refuseWaiting(): RateLimitError | undefined {
    if (this.closed) return new RateLimitError('UNAVAILABLE', 'acquire: the limiter is closed');
    if (!this.waiters.hasRoom()) return new RateLimitError('RESOURCE_EXHAUSTED', `acquire: more than ${this.options.maxWaiting} callers are already waiting (maxWaiting)`);
    return undefined;
  }

  /**
   * Releases acquire() callers whose slot has come. The shared timer calls it; code that
   * drives a ManualClock calls it after moving the clock.
   */
  tick(): void {
    this.waiters.flush();
  }

  rateLimit(userId: string, action: string, limit: number, windowSeconds: number): boolean {
    return this.store.isAllowed(windowRequest(userId, action, limit, windowSeconds));
  }

  allowRequest(userId: string, endpoint: string, rateLimit: number, timeWindowSeconds: number): boolean {
    return this.store.isAllowed(windowRequest(userId, endpoint, rateLimit, timeWindowSeconds));
  }

  /** Allowed per window = ratePerSecond × windowSeconds × weight. */
  allowRate(userId: string, action: string, ratePerSecond: number, windowSeconds: number, weight = 1): boolean {
    return this.store.isAllowed(rateRequest(userId, action, ratePerSecond, windowSeconds, weight));
  }

  stats(): LimiterStats {
    return { ...this.store.stats(), waiting: this.waiters.waiting };
  }

  /** Stops the sweeper and rejects callers still waiting in acquire(). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    this.waiters.close();
  }
}
