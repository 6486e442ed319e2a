import { RingLimitError } from '../../common/errors.js';
import type { Reservation } from '../../limiter/types.js';
import { AdminOp } from '../wire/frames.js';
import { HERE, NO_RING, type ClusterView } from './cluster-view.js';
import type { Forwarder } from './forwarder.js';
import type { OwnerDecision, ResolvedRequest } from './owner-decision.js';

import { NO_WAIT } from '../../limiter/algorithms/index.js';
import { copyResolvedParams } from '../../limiter/validate.js';

/** maxWaitMs of a plain allow (no reservation): the one definition, the core's. */
export { NO_WAIT };

/**
 * "Decide here, answer from a hot key's copy, or forward to the owner": the one answer for
 * every request a node is given — its embedded API, the gRPC and HTTP APIs, policy handles,
 * operators' calls. A lone node routes everything to its own decision; a member does what
 * its view says; a member still joining refuses (it has no ring yet).
 */
export interface Router {
  /**
   * The decision now, when it is made here without waiting (or answered from a hot key's
   * copy); undefined when it must be forwarded or waited for. `p` is read now, never kept.
   */
  now(p: ResolvedRequest, maxWaitMs: number): Reservation | undefined;
  /**
   * The decision: synchronous when made at once, else a promise. `scratch` may be the
   * caller's reused object: it is copied before anything that outlives the call. Throws
   * (synchronously) for a request refused before any state changes.
   */
  route(scratch: ResolvedRequest, maxWaitMs: number): Reservation | Promise<Reservation>;
  /** An operator's Inspect or Set (remaining -1: Reset), carried out where the key's state is. */
  admin(p: ResolvedRequest, op: AdminOp, remaining: number): Reservation | Promise<Reservation>;
  /** Whether this node decides (action, key) now. */
  decidesHere(action: string, key: string): boolean;
}

/** A lone node: every key is decided here. */
export function localRouter(decision: OwnerDecision): Router {
  return {
    now: (p, maxWaitMs) => decision.decideNow(p, maxWaitMs),
    route: (scratch, maxWaitMs) => decision.decideNow(scratch, maxWaitMs) ?? decision.decide(copyResolvedParams(scratch), maxWaitMs),
    admin: (p, op, remaining) => decision.admin(p, op, remaining),
    decidesHere: () => true,
  };
}

/**
 * No ring yet (a member joining: its APIs are served from the start): it decides nothing,
 * since it would decide from a fresh state while the key's owner holds the real one — a
 * restarted node reached by callers whose view still names it. Callers fail over.
 */
export function noRingYet(): RingLimitError {
  return new RingLimitError('UNAVAILABLE', 'this node has no ring yet (it is joining): ask another node');
}

/** A member before its cluster is up: refuses every request (noRingYet). */
export const startingRouter: Router = {
  now: () => undefined,
  route: () => {
    throw noRingYet();
  },
  admin: () => {
    throw noRingYet();
  },
  decidesHere: () => false,
};

/** A hot key's local copy (hot-key mode): answers a plain allow for a key owned elsewhere. */
export interface HotCopies {
  decideFromCopy(p: ResolvedRequest): Reservation | undefined;
  /** The owner's answer to a plain allow of a hot key forwarded because there was no copy. */
  ownerAnswered(p: ResolvedRequest, r: Reservation): void;
}

/** Leases (src/node/lease): slices of busy keys' allowances held here, asked before anything else. */
export interface LeaseSlices {
  /** A plain allow answered from a slice held here (synchronous), or undefined. */
  take(p: ResolvedRequest): Reservation | undefined;
  /** A plain allow of this key is being forwarded: counted (a busy key gets a lease). */
  forwarded(p: ResolvedRequest): void;
}

export interface ClusterRouterComponents {
  view: ClusterView;
  decision: OwnerDecision;
  forwarder: Pick<Forwarder, 'forward'>;
  hotCopies: HotCopies;
  /** Undefined while leases are off. */
  leases: LeaseSlices | undefined;
}

/** A member: its view places each key; the owner decides, a hot key's copy answers, or the request is forwarded. */
export class ClusterRouter implements Router {
  /** placement()'s answer, reused by every call. */
  private readonly places: string[] = [];

  constructor(private readonly components: ClusterRouterComponents) {}

  now(p: ResolvedRequest, maxWaitMs: number): Reservation | undefined {
    const { view, decision, hotCopies, leases } = this.components;
    if (leases !== undefined && maxWaitMs < 0) {
      const leased = leases.take(p);
      if (leased !== undefined) return leased;
    }
    if (p.global && maxWaitMs < 0) {
      const fromCopy = hotCopies.decideFromCopy(p);
      if (fromCopy !== undefined) return fromCopy;
    }
    return view.decidesHere(p.action, p.key) ? decision.decideNow(p, maxWaitMs) : undefined;
  }

  route(scratch: ResolvedRequest, maxWaitMs: number): Reservation | Promise<Reservation> {
    const { view, decision, forwarder, hotCopies, leases } = this.components;
    if (leases !== undefined && maxWaitMs < 0) {
      const leased = leases.take(scratch);
      if (leased !== undefined) return leased;
    }
    // A copy exists only for a key owned elsewhere (copies are dropped on every ring change): ask it first.
    if (scratch.global && maxWaitMs < 0) {
      const fromCopy = hotCopies.decideFromCopy(scratch);
      if (fromCopy !== undefined) return fromCopy;
    }
    const places = view.placement(scratch.action, scratch.key, this.places);
    if (places === NO_RING) throw noRingYet();
    // Decided now (the common case) needs no copy: nothing keeps the request afterwards.
    if (places === HERE) return decision.decideNow(scratch, maxWaitMs) ?? decision.decide(copyResolvedParams(scratch), maxWaitMs);
    if (leases !== undefined && maxWaitMs < 0) leases.forwarded(scratch);
    const p = copyResolvedParams(scratch);
    const forwarded = forwarder.forward(p, maxWaitMs, this.places.slice(0, places));
    // Until the owner's broadcast makes a copy here (a hot key's first requests only).
    if (p.global && maxWaitMs < 0) return forwarded.then((r) => (hotCopies.ownerAnswered(p, r), r));
    return forwarded;
  }

  admin(p: ResolvedRequest, op: AdminOp, remaining: number): Reservation | Promise<Reservation> {
    const { view, decision, forwarder } = this.components;
    const places = view.placement(p.action, p.key, this.places);
    if (places === NO_RING) throw noRingYet();
    if (places === HERE) return decision.admin(p, op, remaining);
    return forwarder.forward(p, NO_WAIT, this.places.slice(0, places), op, remaining);
  }

  decidesHere(action: string, key: string): boolean {
    return this.components.view.decidesHere(action, key);
  }
}
