import type { Clock } from '../../common/clock.js';
import type { LimiterStore } from '../../limiter/store.js';
import type { Reservation } from '../../limiter/types.js';
import type { ClusterView } from '../routing/cluster-view.js';
import type { OwnerDecision, ResolvedRequest } from '../routing/owner-decision.js';
import type { LeaseSlices } from '../routing/router.js';
import type { PeerTransport } from '../transport/peer-transport.js';
import type { LeaseAskBody, LeaseGrantBody, LeaseReturnBody } from '../wire/frames.js';
import { LeaseGranter, type LeaseGranterStats } from './lease-granter.js';
import { LeaseHolder, type LeaseHolderStats } from './lease-holder.js';
import type { LeaseOptions } from './lease-options.js';

export interface LeasesComponents {
  view: ClusterView;
  transport: PeerTransport;
  clock: Clock;
  store: LimiterStore;
  decision: OwnerDecision;
  replication: { flushAndWait(): Promise<void>; changed(): void };
  /** The split rule's share (cluster/split-share.ts). */
  split: { readonly value: number };
}

/** stats().leases: a member as a holder of slices, and as the owner that grants them. */
export interface LeasesStats {
  holder: LeaseHolderStats;
  granter: LeaseGranterStats & { tracked: number };
}

export const EMPTY_LEASES_STATS: Readonly<LeasesStats> = {
  holder: { leases: 0, leasedDecisions: 0, asks: 0, grants: 0, unitsGranted: 0, refusals: 0, unitsReturned: 0, unitsLost: 0, overflow: 0, droppedFrames: 0 },
  granter: { grants: 0, unitsGranted: 0, refused: 0, unitsTakenBack: 0, unitsNotTakenBack: 0, droppedFrames: 0, tracked: 0 },
};

/**
 * Leases, both ends of one member (docs/decisions/0007): the holder answers busy keys from
 * slices the owners granted it, and the granter grants slices of the keys this member owns.
 * The router asks `slices` (undefined while leases are off, so the hot path pays nothing);
 * peer dispatch hands the three lease frames here.
 */
export class Leases {
  private readonly holder: LeaseHolder;
  private readonly granter: LeaseGranter;

  constructor(components: LeasesComponents, options: LeaseOptions) {
    this.holder = new LeaseHolder(components, options);
    this.granter = new LeaseGranter(components, options);
    this.slices = options.enabled ? this.holder : undefined;
  }

  /** What the router asks on every plain allow; undefined when leases are off. */
  readonly slices: LeaseSlices | undefined;

  receiveAsks(asks: LeaseAskBody[], from: string): void {
    this.granter.receiveAsks(asks, from);
  }

  receiveGrants(grants: LeaseGrantBody[], from: string): void {
    for (const grant of grants) this.holder.receiveGrant(grant, from);
  }

  receiveReturns(returns: LeaseReturnBody[], from: string): void {
    this.granter.receiveReturns(returns, from);
  }

  /** Ownership changed: holders keep their slices until they end (the units were consumed at the old owner and replicated); grants tracked here are forgotten. */
  ownersChanged(): void {
    this.granter.ownersChanged();
  }

  stats(): LeasesStats {
    return { holder: this.holder.stats(), granter: { ...this.granter.stats, tracked: this.granter.tracked } };
  }

  /** A graceful stop gives every slice back first. */
  close(graceful: boolean): void {
    if (graceful) this.holder.returnAll();
    this.holder.close();
    this.granter.close();
  }

  /** For the ledger's property test and diagnostics: a decision answered from a slice, if one applies. */
  take(p: ResolvedRequest): Reservation | undefined {
    return this.slices?.take(p);
  }
}
