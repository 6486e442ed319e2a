import { invalidArgument } from '../../common/errors.js';
import type { LatencyHistogram } from '../../common/latency.js';
import { promised } from '../../common/promised.js';
import type { LimiterStore } from '../../limiter/store.js';
import type { Decision, RateLimitRequest, Reservation, ResolvedParams } from '../../limiter/types.js';
import { newResolvedParams } from '../../limiter/validate.js';
import { NO_WAIT, type Router } from './router.js';

/** The longest a reservation may wait, in ms (24 h). */
const MAX_WAIT_MS = 86_400_000;

export interface RequestPathComponents {
  /** Validates requests (policies, load factor) into resolved parameters. */
  store: LimiterStore;
  /** Sampled decision latency: answered here, and answered by the owner it was forwarded to. */
  latency: { local: LatencyHistogram; forwarded: LatencyHistogram };
}

/**
 * A node's request path: validate once (a bad request throws before any state changes),
 * time one decision in LATENCY_SAMPLE_EVERY, and ask the router. Every API of the node
 * comes through here; `router` changes as the node starts (joining, then a member).
 */
export class RequestPath {
  /** For now() and decide(): it never crosses an await. */
  private readonly scratch = newResolvedParams();

  constructor(
    private readonly components: RequestPathComponents,
    public router: Router,
  ) {}

  /** allowNow(): the decision now when made here without a wait or a hop; undefined otherwise. */
  now(request: RateLimitRequest): Decision | undefined {
    return this.router.now(this.components.store.resolve(request, this.scratch), NO_WAIT);
  }

  /** now() for a request already validated (policy handles); `p` is read now, never kept. */
  nowResolved(p: ResolvedParams): Decision | undefined {
    return this.router.now(p, NO_WAIT);
  }

  /**
   * A plain allow (maxWaitMs undefined) or a reservation, decided here or at its owner:
   * synchronously when decided at once. Throws RateLimitError for bad input.
   */
  decide(request: RateLimitRequest, maxWaitMs: number | undefined): Reservation | Promise<Reservation> {
    if (maxWaitMs !== undefined && (typeof maxWaitMs !== 'number' || !(maxWaitMs >= 0 && maxWaitMs <= MAX_WAIT_MS))) {
      throw invalidArgument('maxWaitMs', `must be a number from 0 to ${MAX_WAIT_MS} (24 h), got ${String(maxWaitMs)}`);
    }
    return this.decideResolved(this.components.store.resolve(request, this.scratch), maxWaitMs ?? NO_WAIT);
  }

  /** decide() as a promise: the embedded allow() and reserve(). */
  promise(request: RateLimitRequest, maxWaitMs: number | undefined): Promise<Reservation> {
    return promised(this.decide, this, request, maxWaitMs);
  }

  /** A validated request (policy handles) as a promise; `p` may be reused by the caller. */
  promiseResolved(p: ResolvedParams): Promise<Reservation> {
    return promised(this.decideResolved, this, p, NO_WAIT);
  }

  /** Decides a validated request here or at its owner; `p` may be a reused scratch (the router copies it before anything outlives the call). */
  decideResolved(p: ResolvedParams, maxWaitMs: number): Reservation | Promise<Reservation> {
    const { latency } = this.components;
    if (!latency.local.sample()) return this.router.route(p, maxWaitMs);
    // A sampled decision: the same path, timed (an answer later than now is "forwarded" unless this node decides the key).
    const startedMs = performance.now();
    const here = this.router.decidesHere(p.action, p.key);
    const answer = this.router.route(p, maxWaitMs);
    if (!(answer instanceof Promise)) {
      latency.local.record(performance.now() - startedMs);
      return answer;
    }
    const histogram = here ? latency.local : latency.forwarded;
    return answer.then((r) => {
      histogram.record(performance.now() - startedMs);
      return r;
    });
  }
}
