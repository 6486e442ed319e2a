import type { LimiterStore } from '../../limiter/store.js';
import type { RateLimitRequest, Reservation, ResolvedParams, ResolvedPolicy } from '../../limiter/types.js';
import { newResolvedParams, resolveRequest } from '../../limiter/validate.js';
import { promised } from '../../common/promised.js';
import { AdminOp } from '../wire/frames.js';

/** A request validated once, into its own value: it travels with the call across every await. */
export type ResolvedRequest = Readonly<ResolvedParams>;

/** Validates `request` (throws RateLimitError before a state changes) into a value of its own; `said`: what the policies set for it. */
export function resolveOnce(request: RateLimitRequest, said?: ResolvedPolicy): ResolvedRequest {
  return resolveRequest(request, newResolvedParams(), said);
}

/** What a forwarded item asks of the owner: a decision, or an operator's operation. */
interface ForwardedAsk {
  op: AdminOp;
  maxWaitMs: number;
  remaining: number;
}

/** Fetches a key's state from its previous owner on first access after a ring change. */
export interface KeyPuller {
  /** Whether some first access may have to wait for a pull now. */
  mayPull(): boolean;
  /** A promise when the first access to (action, key) must wait for the previous owner's state. */
  pullIfNeeded(action: string, key: string): Promise<void> | undefined;
}

/** Replication of the decisions made here. */
export interface ReplicationFlusher {
  /** A decision may have changed a key's state: replication sends it soon. */
  changed(): void;
  /** Sends pending replication and settles once the replicas acked (or gave up). */
  flushAndWait(): Promise<void>;
}

export interface OwnerDecisionComponents {
  store: LimiterStore;
  /** Absent for a single node. */
  puller?: KeyPuller;
  replication?: ReplicationFlusher;
  /** Hot-key mode: every hot key decided here is marked for the owner's next broadcast. */
  hotKeyMarks?: { mark(action: string, key: string): void };
  /** This side's share while the cluster is split (cluster/split-share.ts); absent or 1: the whole cluster. */
  split?: SplitShareReader;
}

/** What a decision asks of the split rule. */
export interface SplitShareReader {
  /** The part of the cluster (as it was) this node reaches: 1 when whole. Read per decision. */
  readonly value: number;
  /** Whether the rule is in force at all (splitShareMs > 0). */
  readonly enabled: boolean;
  /** Whether every node that may hold (action, key)'s state is out of reach (asked only for a key with no state here). */
  unknownElsewhere(action: string, key: string): boolean;
  /** How long until asking again may find the split over (a refused key's retryAfterMs). */
  retryAfterMs(): number;
  /** The clock's now (a refused key's resetAtMs is relative to it). */
  now(): number;
}

/** Where a request goes when its key moved on while it waited for a pull (the Router). */
export interface MovedKeyRouter {
  decidesHere(action: string, key: string): boolean;
  route(p: ResolvedRequest, maxWaitMs: number): Reservation | Promise<Reservation>;
}

export interface OwnerDecisionInit {
  /** Answer an allowed decision only after its replicas acked. */
  syncReplication: boolean;
}

/**
 * "Decide this here": the one owner-side decision. Every path that decides on this node
 * calls it — a local call, a forward received from a peer, a forward that failed over to
 * this node, the onUnavailable 'local' fallback — so each gets the same steps: pull the
 * key's state if it just moved here, decide in the store, and with sync replication wait
 * for the replicas before answering.
 */
export class OwnerDecision {
  /** Decisions made here. */
  decided = 0;
  /** Refused during a split: no state here, and the members that may hold it out of reach. */
  refusedUnknown = 0;
  /** Requests routed again: their key's ring changed while they waited for its pull. */
  movedDuringPull = 0;
  private router: MovedKeyRouter | undefined;

  constructor(
    private readonly components: OwnerDecisionComponents,
    private readonly init: OwnerDecisionInit,
  ) {}

  /**
   * The decision now, or undefined when it might have to wait (a pull window is open, or
   * replication is sync): then call decide(). Never starts anything it does not finish.
   */
  decideNow(p: ResolvedRequest, maxWaitMs: number): Reservation | undefined {
    if (this.init.syncReplication || this.components.puller?.mayPull() === true) return undefined;
    this.decided++;
    const decision = this.inStore(p, maxWaitMs);
    if (p.global) this.components.hotKeyMarks?.mark(p.action, p.key);
    this.components.replication?.changed();
    return decision;
  }

  /**
   * The decision: synchronous when nothing has to be waited for, else a promise. Throws
   * (synchronously) for a request the store refuses.
   */
  decide(p: ResolvedRequest, maxWaitMs: number): Reservation | Promise<Reservation> {
    const pull = this.components.puller?.pullIfNeeded(p.action, p.key);
    if (pull !== undefined) return pull.then(() => this.afterPull(p, maxWaitMs));
    return this.decideInStore(p, maxWaitMs);
  }

  /** Requests whose key moved on during their pull go back to `router` (a cluster member's; set once). */
  routeMovedKeysBy(router: MovedKeyRouter): void {
    this.router = router;
  }

  /**
   * A pull ended: decided here if the key is still this node's. The ring may have changed
   * meanwhile, and this node then announced its push for the new one: deciding a key it no
   * longer owns would start a second count beside its owner's.
   */
  private afterPull(p: ResolvedRequest, maxWaitMs: number): Reservation | Promise<Reservation> {
    const router = this.router;
    if (router === undefined || router.decidesHere(p.action, p.key)) return this.decideInStore(p, maxWaitMs);
    this.movedDuringPull++;
    return router.route(p, maxWaitMs);
  }

  /** Whether this node holds a state for (action, key): a decision here would not start from a fresh one. */
  holds(action: string, key: string): boolean {
    return this.components.store.has(action, key);
  }

  /**
   * No holder of (action, key) answered a forward (onUnavailable 'local'): with the split rule
   * in force, a key with no state here is refused, not started fresh — its holders may be on
   * the other side of a split gossip has not noticed yet, and have spent it. Else decide().
   */
  decideUnreached(p: ResolvedRequest, maxWaitMs: number): Promise<Reservation> {
    const split = this.components.split;
    if (split?.enabled === true && !this.components.store.has(p.action, p.key)) return Promise.resolve(this.refuseUnknown(p, split));
    return this.decideAsync(p, maxWaitMs);
  }

  /** decide() as a promise, for callers that answer later anyway. */
  decideAsync(p: ResolvedRequest, maxWaitMs: number): Promise<Reservation> {
    return promised(this.decide, this, p, maxWaitMs);
  }

  /**
   * An operator's Inspect or Set on a key this node owns (remaining -1: Reset), after the
   * previous owner's state has come (a pull window): a Set then replaces it, and replicates.
   */
  admin(p: ResolvedRequest, op: AdminOp, remaining: number): Reservation | Promise<Reservation> {
    const pull = this.components.puller?.pullIfNeeded(p.action, p.key);
    if (pull !== undefined) return pull.then(() => this.adminInStore(p, op, remaining));
    return this.adminInStore(p, op, remaining);
  }

  /** What a forwarded item asks, as a promise: a decision or an operator's operation. */
  carryOut(p: ResolvedRequest, item: ForwardedAsk): Promise<Reservation> {
    return promised(this.carryOutNow, this, p, item);
  }

  private carryOutNow(p: ResolvedRequest, item: ForwardedAsk): Reservation | Promise<Reservation> {
    return item.op === AdminOp.Decide ? this.decide(p, item.maxWaitMs) : this.admin(p, item.op, item.remaining);
  }

  private adminInStore(p: ResolvedRequest, op: AdminOp, remaining: number): Reservation {
    const store = this.components.store;
    if (op === AdminOp.Inspect) return { ...store.inspectResolved(p), waitMs: 0 };
    const decision = store.setRemainingResolved(p, remaining < 0 ? undefined : remaining);
    this.components.replication?.changed();
    return { ...decision, waitMs: 0 };
  }

  private decideInStore(p: ResolvedRequest, maxWaitMs: number): Reservation | Promise<Reservation> {
    this.decided++;
    const decision = this.inStore(p, maxWaitMs);
    if (p.global) this.components.hotKeyMarks?.mark(p.action, p.key);
    const replication = this.components.replication;
    if (replication === undefined) return decision;
    if (this.init.syncReplication && decision.allowed) return replication.flushAndWait().then(() => decision);
    replication.changed();
    return decision;
  }

  /** The store's decision — with this side's share of it while the cluster is split. */
  private inStore(p: ResolvedRequest, maxWaitMs: number): Reservation {
    const split = this.components.split;
    if (split === undefined || split.value >= 1) return this.components.store.decideResolved(p, maxWaitMs);
    return this.shareOf(p, maxWaitMs, split);
  }

  /**
   * Split: each admitted unit takes 1 / share units of the key's state, so from a state with R
   * remaining this side admits at most share × R, and the sides together at most R. A key with
   * no state here whose holders are out of reach has an unknown remaining: refused (it may be
   * used up elsewhere), until the split is over or those members are declared dead.
   */
  private shareOf(p: ResolvedRequest, maxWaitMs: number, split: SplitShareReader): Reservation {
    const store = this.components.store;
    if (!store.has(p.action, p.key) && split.unknownElsewhere(p.action, p.key)) return this.refuseUnknown(p, split);
    const share = split.value;
    // 1/share rounded down by a hair: 40 left at share 3/5 admits 24, not 23 (24 × 1.666… ≈ 40.000000001).
    // A spread: on Node 20's V8 the fractional cost then lives on a class of its own; written into a copyResolvedParams()
    // object it would generalise the class every request shares, deoptimising the decision path at the first split.
    const d = store.decideResolved({ ...p, cost: (p.cost / share) * (1 - 1e-12) }, maxWaitMs);
    return { ...d, remaining: Math.floor(d.remaining * share + 1e-9) };
  }

  private refuseUnknown(p: ResolvedRequest, split: SplitShareReader): Reservation {
    this.refusedUnknown++;
    const retryAfterMs = split.retryAfterMs();
    return { allowed: false, limit: p.limit, remaining: 0, resetAtMs: split.now() + retryAfterMs, retryAfterMs, waitMs: 0 };
  }
}
