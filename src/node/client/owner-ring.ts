import type * as grpc from '@grpc/grpc-js';
import { systemClock } from '../../common/clock.js';
import type { RateLimitRequest } from '../../limiter/types.js';
import { ClusterView, PLACEMENT, type ViewMember } from '../routing/cluster-view.js';
import { isNodeAddress, type ClientOptions } from './client-options.js';
import { MAX_LINKS, type LinkPool } from './link-pool.js';
import type { NodeLink } from './pending-call.js';

/**
 * The owners as the nodes describe them (Members RPC, asked of the preferred node about
 * once a second when ring-aware), and the view that places keys on them the way the nodes
 * do: a stale view costs a hop, never a wrong answer.
 */
/** refreshSoon() asks at most this often (a failing node fails many calls at once). */
const SOON_REFRESH_GAP_MS = 250;

export class OwnerRing {
  private owners: ViewMember[] = [];
  /** The digest of the owners last learned (MembersResponse.ring; 0 from a node that sends none). */
  private digest = 0;
  private askedAtMs = -Infinity;
  private readonly view: ClusterView;
  private readonly timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly options: ClientOptions,
    private readonly pool: LinkPool,
    private readonly metadata: grpc.Metadata,
  ) {
    this.view = new ClusterView({ members: { current: () => this.owners }, clock: systemClock }, { selfId: '', replicas: 0, maxHandedAwayKeys: 0, handoffWindowMs: 0 });
    if (options.ringAware) {
      this.refresh();
      this.timer = setInterval(() => this.refresh(), options.ringRefreshMs);
      this.timer.unref();
    }
  }

  /** Asks a configured node for the owners; a failed or odd answer keeps the view as it was. */
  /**
   * A node failed calls (answered UNAVAILABLE, its stream broke, or it went silent): the
   * members may have changed — a node draining or gone — so ask now instead of at the next
   * ringRefreshMs; calls go on to the old view's owners meanwhile (a hop, never a wrong answer).
   */
  refreshSoon(): void {
    if (!this.options.ringAware || this.closed || performance.now() - this.askedAtMs < SOON_REFRESH_GAP_MS) return;
    this.refresh();
  }

  private refresh(): void {
    this.askedAtMs = performance.now();
    this.pool.preferredLink.client.members({}, this.metadata, { deadline: Date.now() + this.options.timeoutMs }, (error, response) => {
      if (error !== null || response === undefined || this.closed || response.placement !== PLACEMENT) return;
      const owners = (response.owners ?? []).slice(0, MAX_LINKS);
      if (!owners.every((o) => typeof o.nodeId === 'string' && isNodeAddress(o.address))) return;
      this.owners = owners.map((o) => ({ nodeId: o.nodeId, address: o.address, owns: true }));
      this.digest = typeof response.ring === 'number' ? response.ring : 0;
      this.view.refresh();
    });
  }

  /**
   * An answer named the owners its node places keys on by their digest: another than those
   * last learned means the ring moved (a member joined, drained or left), so ask now instead
   * of at the next ringRefreshMs — at most every SOON_REFRESH_GAP_MS while nodes disagree.
   */
  seen(digest: number): void {
    if (digest !== 0 && digest !== this.digest) this.refreshSoon();
  }

  /** The link to (action, key)'s owner, when the view knows it. */
  ownerLink(request: RateLimitRequest): NodeLink | undefined {
    if (this.view.ownerCount === 0 || typeof request?.key !== 'string') return undefined;
    const address = this.view.addressOf(this.view.ownerOf(request.action ?? 'default', request.key));
    return address === undefined ? undefined : this.pool.linkTo(address);
  }

  /** Node ids owning keys, as last learned (empty until then, or when not ring-aware). */
  ownerIds(): string[] {
    return this.view.ownerIds();
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
  }
}
