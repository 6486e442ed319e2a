import { RingLimitError } from '../../common/errors.js';
import type { CallBook } from './call-book.js';
import type { ClientMetrics } from './client-metrics.js';
import type { ClientOptions } from './client-options.js';
import type { LinkPool } from './link-pool.js';
import type { OwnerRing } from './owner-ring.js';
import type { NodeLink, PendingCall, RawStream } from './pending-call.js';

/**
 * Where each call goes, and where it goes next: first its key's owner (ring-aware), then
 * the configured nodes in turn (any node answers for any key). A call moves on when its
 * node answers UNAVAILABLE, its stream breaks, or its deadline passes; one interval checks
 * the deadlines (no timer per request), and a node that stops answering has its stream
 * dropped, so it gets no more traffic until the reconnect backoff passes.
 */
export class Failover {
  private readonly deadlineTimer: NodeJS.Timeout;

  constructor(
    private readonly options: ClientOptions,
    private readonly book: CallBook,
    private readonly pool: LinkPool,
    private readonly ring: OwnerRing,
    private readonly metrics: ClientMetrics,
  ) {
    this.deadlineTimer = setInterval(() => this.expire(), Math.max(5, options.timeoutMs / 4));
    this.deadlineTimer.unref();
  }

  /** Queues `call` for the next node to try, or fails it when every node was tried. */
  dispatch(call: PendingCall): void {
    const link = this.nextLink(call);
    if (link === undefined) {
      call.reject(this.pool.refusal ?? new RingLimitError('UNAVAILABLE', `no node answered (tried ${this.options.nodes.join(', ')})`));
      return;
    }
    this.book.queue(link, call);
  }

  /**
   * First the key's owner (ring-aware), then the configured nodes from firstNode on. A hot
   * key's plain allow skips the owner: every node answers it from its copy, so each client
   * stays with its preferred node (a random one) and many clients spread the key's load.
   */
  private nextLink(call: PendingCall): NodeLink | undefined {
    if (call.attempt === 0 && this.options.ringAware && !(call.request.global === true && call.maxWaitMs === undefined)) {
      const owner = this.ring.ownerLink(call.request);
      if (owner !== undefined) {
        call.viaOwner = true;
        return owner;
      }
    }
    const fallback = call.attempt - (call.viaOwner ? 1 : 0);
    const links = this.pool.configured;
    if (fallback >= links.length) return undefined;
    return links[(call.firstNode + fallback) % links.length];
  }

  /** These calls move to the next node; later calls start at a node that works. */
  failOver(calls: PendingCall[], from: NodeLink): void {
    if (this.book.closed) return;
    this.pool.avoid(from);
    this.ring.refreshSoon();
    this.metrics.counters.failovers += calls.length;
    for (const call of calls) {
      call.attempt++;
      this.dispatch(call);
    }
  }

  /** `call` was answered UNAVAILABLE, or its deadline passed. */
  retry(call: PendingCall): void {
    if (call.node !== undefined) this.failOver([call], call.node);
  }

  /** `link`'s stream `call` broke: what awaited answers on it, and what is queued for it, moves on. */
  streamBroke(link: NodeLink, call: RawStream): void {
    if (!this.pool.dropStream(link, call)) return;
    this.metrics.counters.streamBreaks++;
    this.failOver(this.book.takeLost(link), link);
    if (!this.book.closed) this.failOver(this.book.takeQueue(link), link);
  }

  /** Deadlines are in send order (one timeout for all): the calls past theirs move on, and their nodes' streams are dropped. */
  private expire(): void {
    const expired = this.book.takeExpired(performance.now());
    if (expired.length === 0) return;
    this.metrics.counters.timeouts += expired.length;
    const hung = new Set<NodeLink>();
    for (const call of expired) {
      if (call.node !== undefined) hung.add(call.node);
      this.retry(call);
    }
    for (const link of hung) if (link.call !== undefined) this.streamBroke(link, link.call);
  }

  close(): void {
    clearInterval(this.deadlineTimer);
  }
}
