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
/** A ring not asked about yet is asked of the node that named it at most this often (a node naming a new digest in every answer costs an ask per this long). */
const NEW_RING_ASK_GAP_MS = 20;

export class OwnerRing {
  private owners: ViewMember[] = [];
  /** The digest of the owners last learned (MembersResponse.ring; 0 from a node that sends none). */
  private digest = 0;
  /** The digest last asked about of the node that named it (seen). */
  private askedDigest = 0;
  /** The digest learned before the current one: a node still naming it lags behind. */
  private previousDigest = 0;
  /** Asks numbered in order, and the newest whose answer was applied: an older answer arriving later is dropped. */
  private asks = 0;
  private appliedAsk = 0;
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

  private refresh(link: NodeLink = this.pool.preferredLink): void {
    this.askedAtMs = performance.now();
    const ask = ++this.asks;
    link.client.members({}, this.metadata, { deadline: Date.now() + this.options.timeoutMs }, (error, response) => {
      if (error !== null || response === undefined || this.closed || response.placement !== PLACEMENT || ask < this.appliedAsk) return;
      const owners = (response.owners ?? []).slice(0, MAX_LINKS);
      if (!owners.every((o) => typeof o.nodeId === 'string' && isNodeAddress(o.address))) return;
      this.owners = owners.map((o) => ({ nodeId: o.nodeId, address: o.address, owns: true }));
      this.appliedAsk = ask;
      const digest = typeof response.ring === 'number' ? response.ring : 0;
      if (digest !== this.digest) this.previousDigest = this.digest;
      this.digest = digest;
      this.view.refresh();
    });
  }

  /**
   * An answer from `link`'s node named the owners it places keys on by their digest: another
   * than those last learned means the ring moved (a member joined, drained or left). A digest
   * not asked about yet is asked of that node at once — the preferred node may not have seen
   * the change end yet, and asking it again waited SOON_REFRESH_GAP_MS after any ask, the
   * periodic one included (up to a quarter second of every request to a leaving node's keys
   * taking a hop) — then at most every SOON_REFRESH_GAP_MS while nodes disagree. A node naming
   * the ring learned before the current one lags behind: it is not asked out of turn.
   */
  seen(digest: number, link: NodeLink): void {
    if (digest === 0 || digest === this.digest) return;
    if (digest !== this.askedDigest && digest !== this.previousDigest && this.options.ringAware && !this.closed && performance.now() - this.askedAtMs >= NEW_RING_ASK_GAP_MS) {
      this.askedDigest = digest;
      this.refresh(link);
      return;
    }
    this.refreshSoon();
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
