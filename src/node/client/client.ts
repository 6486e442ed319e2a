import { RateLimitError, RingLimitError, invalidArgument } from '../../common/errors.js';
import type { RateLimitRequest, Reservation } from '../../limiter/types.js';
import type { WireHealth } from '../api/proto.js';
import type { Registry } from '../ops/metrics.js';
import { clientMetadata } from '../transport/credentials.js';
import { UnaryCalls, type AdminCallOptions } from './unary-calls.js';
import { CallBook } from './call-book.js';
import { CallSender } from './call-sender.js';
import { ClientMetrics, type ClientStats } from './client-metrics.js';
import { resolveClientOptions, type ClientOptions } from './client-options.js';
import { Failover } from './failover.js';
import { LinkPool } from './link-pool.js';
import { OwnerRing } from './owner-ring.js';
import type { PendingCall } from './pending-call.js';

export { clientDefaults, type ClientOptions } from './client-options.js';
export type { ClientStats } from './client-metrics.js';
export type { AdminCallOptions } from './unary-calls.js';

/**
 * A client for ringlimit clusters over one long-lived AllowStream per node. Ring-aware by
 * default: it learns the owners (Members RPC, about once a second) and sends each request
 * straight to its key's owner; a stale view costs a hop, never a wrong answer. Batching
 * adapts to load (AdaptiveBatcher, the same discipline as the peer streams): a message is
 * in flight until the node reports it `processed`. No timer per request: one interval
 * checks deadlines. A request that times out, or whose stream breaks, moves to
 * the next node (any node answers for any key).
 *
 * Its parts, in the order a request meets them: client-options.ts, owner-ring.ts (whose
 * node owns the key), failover.ts (which node to try, and the next), call-book.ts (the
 * queued and awaited calls), call-sender.ts (the stream messages out and the answers in),
 * link-pool.ts (the channels and streams); unary-calls.ts for the operator's calls and Health.
 */
export class RingLimitClient {
  private readonly options: ClientOptions;
  private readonly meters = new ClientMetrics();
  private readonly book: CallBook;
  private readonly pool: LinkPool;
  private readonly ring: OwnerRing;
  private readonly failover: Failover;
  private readonly sender: CallSender;
  private readonly unary: UnaryCalls;

  constructor(options: Partial<ClientOptions> & { nodes: string[] }) {
    this.options = resolveClientOptions(options);
    const metadata = clientMetadata(this.options.token);
    this.book = new CallBook(this.options, (queue, batch) => this.sender.send(queue, batch));
    this.pool = new LinkPool(this.options, this.book.batcher, metadata);
    this.ring = new OwnerRing(this.options, this.pool, metadata);
    this.failover = new Failover(this.options, this.book, this.pool, this.ring, this.meters);
    this.sender = new CallSender(this.options.timeoutMs, this.book, this.pool, this.failover, this.meters, this.ring);
    this.unary = new UnaryCalls(this.pool, this.options.timeoutMs, metadata);
  }

  allow(request: RateLimitRequest): Promise<Reservation> {
    return this.submit(request, undefined);
  }

  reserve(request: RateLimitRequest, options: { maxWaitMs: number }): Promise<Reservation> {
    return this.submit(request, options.maxWaitMs);
  }

  /** An operator's look at a key at its owner: its remaining and reset time, consuming nothing. */
  inspect(request: RateLimitRequest, options: AdminCallOptions): Promise<Reservation> {
    return this.admin('inspect', request, undefined, options);
  }

  /** An operator gives a key its full allowance back at its owner (replicated like every change). */
  reset(request: RateLimitRequest, options: AdminCallOptions): Promise<Reservation> {
    return this.admin('reset', request, undefined, options);
  }

  /** An operator puts a key's remaining to `remaining` (0 to its capacity) at its owner. */
  setRemaining(request: RateLimitRequest, remaining: number, options: AdminCallOptions): Promise<Reservation> {
    return this.admin('setRemaining', request, remaining, options);
  }

  /** One unary call to a configured node, which carries it to the key's owner. */
  private admin(method: 'inspect' | 'reset' | 'setRemaining', request: RateLimitRequest, remaining: number | undefined, options: AdminCallOptions): Promise<Reservation> {
    if (this.book.closed) return Promise.reject(new RingLimitError('UNAVAILABLE', 'client closed'));
    return this.unary.onKey(method, request, remaining, options);
  }

  /** Node ids owning keys, as the client last learned them (empty until it has, or when not ring-aware). */
  ownerIds(): string[] {
    return this.ring.ownerIds();
  }

  health(nodeIndex = this.pool.preferred): Promise<WireHealth> {
    return this.unary.health(nodeIndex);
  }

  stats(): ClientStats {
    return this.meters.stats();
  }

  /**
   * The client's Prometheus metrics (prom-client registry, read at each scrape): its call
   * latency as ringlimit_decision_duration_seconds{path="client"}, and its counters. Give it
   * a registry of your own to add them to; not one a node in this process also uses.
   */
  metrics(registry?: Registry): Registry {
    return this.meters.registryOf(registry);
  }

  /** Requests queued or awaiting an answer. */
  get pending(): number {
    return this.book.pending;
  }

  close(): void {
    if (this.book.closed) return;
    this.failover.close();
    this.ring.close();
    this.book.close(new RingLimitError('UNAVAILABLE', 'client closed'));
    this.pool.close();
  }

  private submit(given: RateLimitRequest, maxWaitMs: number | undefined): Promise<Reservation> {
    if (this.book.closed) return Promise.reject(new RingLimitError('UNAVAILABLE', 'client closed'));
    if (typeof given !== 'object' || given === null) return Promise.reject(invalidArgument('request', 'must be an object with key, limit and windowMs'));
    if (this.book.pending >= this.options.maxPending) {
      return Promise.reject(new RateLimitError('RESOURCE_EXHAUSTED', `more than ${this.options.maxPending} requests pending`));
    }
    // A copy: the caller may reuse its request object before this one is sent (the node validates every field).
    const request: RateLimitRequest = { ...given };
    return new Promise<Reservation>((resolve, reject) => {
      const call: PendingCall = { id: 0, request, maxWaitMs, timestampMs: 0, resolve, reject, firstNode: this.pool.preferred, viaOwner: false, attempt: 0, node: undefined, deadlineMs: 0, startedMs: this.meters.latency.sample() ? performance.now() : -1 };
      this.failover.dispatch(call);
    });
  }
}
