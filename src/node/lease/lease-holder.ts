import type { Clock } from '../../common/clock.js';
import { WakeTimer } from '../../common/wake-timer.js';
import type { Calendar } from '../../limiter/calendar.js';
import { AlgorithmId, type Reservation } from '../../limiter/types.js';
import { copyResolvedParams } from '../../limiter/validate.js';
import type { ClusterView } from '../routing/cluster-view.js';
import { forwardItem } from '../routing/forward-codec.js';
import type { ResolvedRequest } from '../routing/owner-decision.js';
import type { LeaseSlices } from '../routing/router.js';
import { NO_WAIT } from '../routing/router.js';
import type { PeerTransport } from '../transport/peer-transport.js';
import type { LeaseGrantBody } from '../wire/frames.js';
import { LeaseOutbox } from './lease-outbox.js';
import { DemandMeter } from './demand-meter.js';
import { usableMs, type LeaseOptions } from './lease-options.js';

/** What a holder asks of the cluster view. */
export type HolderView = Pick<ClusterView, 'ownerOf' | 'decidesHere' | 'addressOf'>;

/** A slice of one key's allowance held here. */
interface Lease {
  action: string;
  key: string;
  /** The request shape the slice was granted for: a request of another shape is forwarded. */
  limit: number;
  windowMs: number;
  calendar: Calendar | null;
  /** The parameters asks carry (the first request's, cost aside). */
  params: ResolvedRequest;
  /** Units left to admit here. */
  units: number;
  /** The node that granted them (returns go to it), and the window they came from (its start, on that node's clock). */
  grantedBy: string;
  epoch: number;
  /** Past this (this node's clock), nothing is admitted from the slice. */
  expiresAtMs: number;
  /** Ask for more from here on (half the slice's life), or once the units are down to lowWater. */
  refreshAtMs: number;
  lowWater: number;
  /** The last grant's units: a slice used up before half its life asks for twice as many next (as TCP's slow start). */
  lastGrant: number;
  /** When the key is back to its full allowance (this node's clock): the reset time of a leased decision. */
  resetAtMs: number;
  /** An ask is in flight (one at a time). */
  asking: boolean;
  /** No ask before this (after a refusal). */
  nextAskAtMs: number;
  /** Units admitted since the last rate sample, and the rate measured, per s. */
  used: number;
  ratePerSec: number;
  lastUsedMs: number;
}

interface PendingAsk {
  lease: Lease;
  owner: string;
  sentAtMs: number;
}

export interface LeaseHolderStats {
  /** Leases held now. */
  leases: number;
  /** Decisions answered from a slice (no hop). */
  leasedDecisions: number;
  asks: number;
  /** Grants with units, and their units. */
  grants: number;
  unitsGranted: number;
  /** Asks the owner answered with no units. */
  refusals: number;
  /** Units given back (the key cooled, the lease ended, a grant came too late). */
  unitsReturned: number;
  /** Units granted and never admitted nor given back (expired, or replaced by a grant of another window): under-admission, never over. */
  unitsLost: number;
  /** Keys that would have had a lease past maxLeases. */
  overflow: number;
  /** Grants dropped: not from the node asked, for another key, or with implausible values. */
  droppedFrames: number;
}

/** How often a holder samples its leases' rates and ends idle or expired ones, in ms (at most). */
const SWEEP_MS = 250;
/** After a refusal, the next ask of the key waits this long, in ms. */
const ASK_BACKOFF_MS = 250;

/**
 * Leases, the holder's end. `take()` is the hot path: a map lookup, a clock read and a
 * decrement, synchronous, no promise and no timer per request; it answers a plain allow of a
 * key with a slice here, and asks the owner for more (LeaseAsk) at the low-water mark or
 * half-way through the slice's life. `forwarded()` counts the keys this node forwards, and
 * gives a lease to those past `thresholdPerSec` (or of a forced action). A sweep every
 * SWEEP_MS gives back the slices of keys that cooled, and ends expired ones.
 *
 * A slice's units were consumed at the owner and replicated as consumed before the grant,
 * so using them here, until the lease's end — counted from the ask's sending, shortened for
 * clock drift, and never past the window they came from — never over-admits; a holder that
 * dies or is cut off loses at most its slices (under-admission).
 */
export class LeaseHolder implements LeaseSlices {
  private readonly counters: LeaseHolderStats = { leases: 0, leasedDecisions: 0, asks: 0, grants: 0, unitsGranted: 0, refusals: 0, unitsReturned: 0, unitsLost: 0, overflow: 0, droppedFrames: 0 };
  private readonly leases = new Map<string, Map<string, Lease>>();
  private count = 0;
  private readonly pending = new Map<number, PendingAsk>();
  /** Asks (at most one per lease) and returns, sent once per event-loop turn. */
  private readonly outbox: LeaseOutbox;
  private nextAskId = 1;
  private readonly meter: DemandMeter;
  private readonly forced: ReadonlySet<string>;
  private readonly timer: WakeTimer;
  private lastRateMs: number;
  private closed = false;

  constructor(
    private readonly components: { view: HolderView; transport: PeerTransport; clock: Clock },
    private readonly options: LeaseOptions,
  ) {
    this.forced = new Set(options.actions);
    this.meter = new DemandMeter(options.maxLeases);
    this.outbox = new LeaseOutbox(components.transport, {
      returned: (units) => void (this.counters.unitsReturned += units),
      lost: (units) => void (this.counters.unitsLost += units),
      askFailed: (id) => {
        const pending = this.pending.get(id);
        if (pending === undefined) return;
        this.pending.delete(id);
        pending.lease.asking = false;
        pending.lease.nextAskAtMs = this.components.clock.now() + ASK_BACKOFF_MS;
      },
    });
    this.lastRateMs = components.clock.now();
    this.timer = new WakeTimer(() => this.sweep(), Math.min(SWEEP_MS, options.idleMs / 2));
  }

  /**
   * A plain allow answered from this node's slice of the key, or undefined (no lease, another
   * request shape, expired, or too few units: forward it). Synchronous.
   */
  take(p: ResolvedRequest): Reservation | undefined {
    const lease = this.leases.get(p.action)?.get(p.key);
    if (lease === undefined || p.cost === 0 || p.limit !== lease.limit || p.windowMs !== lease.windowMs || p.calendar !== lease.calendar || p.algorithm !== AlgorithmId.FixedWindow) return undefined;
    const nowMs = this.components.clock.now();
    if (nowMs >= lease.expiresAtMs || lease.units < p.cost) {
      if (!lease.asking && nowMs >= lease.nextAskAtMs) this.ask(lease, nowMs);
      return undefined;
    }
    lease.units -= p.cost;
    lease.used += p.cost;
    lease.lastUsedMs = nowMs;
    if (!lease.asking && nowMs >= lease.nextAskAtMs && (lease.units <= lease.lowWater || (nowMs >= lease.refreshAtMs && this.runsOutBeforeEnd(lease, nowMs)))) this.ask(lease, nowMs);
    this.counters.leasedDecisions++;
    return { allowed: true, limit: p.limit, remaining: lease.units, resetAtMs: lease.resetAtMs, retryAfterMs: 0, waitMs: 0 };
  }

  /**
   * Past half its life, a slice is renewed only if its key would use it up before it ends at the
   * rate measured: a slow key's slice runs to its end and what is left goes back, rather than
   * costing the owner a grant every half-life.
   */
  private runsOutBeforeEnd(lease: Lease, nowMs: number): boolean {
    const rate = Math.max(lease.ratePerSec, (lease.used * 1000) / Math.max(1, nowMs - this.lastRateMs));
    return lease.units <= (rate * (lease.expiresAtMs - nowMs)) / 1000;
  }

  /** A plain allow of a key owned elsewhere is being forwarded: counted, and given a lease once busy (or forced). */
  forwarded(p: ResolvedRequest): void {
    if (p.algorithm !== AlgorithmId.FixedWindow || p.cost === 0 || (this.leases.size !== 0 && this.leases.get(p.action)?.has(p.key) === true)) return;
    const forced = this.forced.size !== 0 && this.forced.has(p.action);
    if (!forced) {
      const seen = this.meter.count(p.action, p.key);
      this.timer.wake();
      if (seen < this.options.thresholdPerSec * (this.meter.periodMs / 1000) || seen === 0) return;
    }
    this.open(p, forced ? this.options.thresholdPerSec : this.meter.ratePerSec(p.action, p.key));
  }

  /** A LeaseGrant from `from`: the units join the slice (or replace one of another window); a grant nobody awaits any more is given back. */
  receiveGrant(grant: LeaseGrantBody, from: string): void {
    const id = grant.id;
    const pending = this.pending.get(id);
    const nowMs = this.components.clock.now();
    if (pending === undefined) {
      // The ask timed out: the units were consumed for nothing; give them back (never used here).
      if (grant.units > 0 && this.components.view.addressOf(from) !== undefined) this.giveBack(from, grant.action, grant.key, grant.units, grant.epoch);
      return;
    }
    const lease = pending.lease;
    if (pending.owner !== from || lease.action !== grant.action || lease.key !== grant.key || grant.units > lease.limit) {
      this.counters.droppedFrames++;
      return;
    }
    this.pending.delete(id);
    lease.asking = false;
    if (grant.units === 0) {
      this.counters.refusals++;
      lease.nextAskAtMs = nowMs + ASK_BACKOFF_MS;
      return;
    }
    this.counters.grants++;
    this.counters.unitsGranted += grant.units;
    if (this.leases.get(lease.action)?.get(lease.key) !== lease) {
      this.giveBack(from, grant.action, grant.key, grant.units, grant.epoch); // ended meanwhile
      return;
    }
    if (lease.units > 0 && (lease.grantedBy !== from || lease.epoch !== grant.epoch || nowMs >= lease.expiresAtMs)) {
      // Units of another window (or owner), or past their end, are not carried over: given back to their granter, which puts them back only into their own window.
      this.giveBack(lease.grantedBy, lease.action, lease.key, lease.units, lease.epoch);
      lease.units = 0;
    }
    // Never longer than this node's own TTL either (a shorter life is always safe).
    const lifeMs = usableMs(Math.min(grant.expiresInMs, this.options.leaseTtlMs), this.options.marginMs);
    lease.grantedBy = from;
    lease.epoch = grant.epoch;
    lease.units += grant.units;
    lease.expiresAtMs = pending.sentAtMs + lifeMs;
    lease.refreshAtMs = pending.sentAtMs + lifeMs / 2;
    lease.lowWater = Math.floor(grant.units * this.options.lowWaterFraction);
    lease.lastGrant = grant.units;
    lease.resetAtMs = nowMs + grant.resetInMs;
    lease.nextAskAtMs = 0;
    this.timer.wake();
  }

  /** The counters, copied. */
  stats(): LeaseHolderStats {
    return { ...this.counters, leases: this.count };
  }

  /** Gives every slice back (a graceful stop). */
  returnAll(): void {
    for (const keys of this.leases.values()) for (const lease of keys.values()) this.end(lease);
  }

  close(): void {
    this.closed = true;
    this.timer.close();
  }

  private open(p: ResolvedRequest, ratePerSec: number): void {
    if (this.count >= this.options.maxLeases) {
      this.counters.overflow++;
      return;
    }
    const nowMs = this.components.clock.now();
    const lease: Lease = {
      action: p.action,
      key: p.key,
      limit: p.limit,
      windowMs: p.windowMs,
      calendar: p.calendar,
      params: copyResolvedParams(p, 1, false),
      units: 0,
      grantedBy: '',
      epoch: Number.NaN,
      expiresAtMs: 0,
      refreshAtMs: 0,
      lowWater: 0,
      lastGrant: 0,
      resetAtMs: 0,
      asking: false,
      nextAskAtMs: 0,
      used: 0,
      ratePerSec,
      lastUsedMs: nowMs,
    };
    let keys = this.leases.get(p.action);
    if (keys === undefined) this.leases.set(p.action, (keys = new Map()));
    keys.set(p.key, lease);
    this.count++;
    this.ask(lease, nowMs);
    this.timer.wake();
  }

  /** Asks the key's owner in this node's view for a slice: the units this node would use over a lease's life at its rate. */
  private ask(lease: Lease, nowMs: number): void {
    const { view } = this.components;
    const owner = view.ownerOf(lease.action, lease.key);
    const address = view.decidesHere(lease.action, lease.key) ? undefined : view.addressOf(owner);
    if (address === undefined) {
      lease.nextAskAtMs = nowMs + ASK_BACKOFF_MS; // owned here now, or no owner known: requests take the usual path
      return;
    }
    const id = this.nextAskId;
    this.nextAskId = id >= Number.MAX_SAFE_INTEGER ? 1 : id + 1;
    const item = forwardItem(id, lease.params, NO_WAIT);
    // Its rate over a lease's life (less what it holds); twice the last slice when that one was used up within half its life.
    const usedUpEarly = lease.units <= lease.lowWater && nowMs < lease.refreshAtMs;
    const byRate = Math.ceil((lease.ratePerSec * this.options.leaseTtlMs) / 1000) - lease.units;
    item.cost = Math.min(lease.limit, Math.max(1, byRate, usedUpEarly ? 2 * lease.lastGrant : 0));
    this.outbox.ask(address, { item, ratePerSec: Math.min(lease.ratePerSec, 1e6) });
    this.counters.asks++;
    lease.asking = true;
    // Counted from now, a moment before the frame leaves: earlier is the safe side.
    this.pending.set(id, { lease, owner, sentAtMs: nowMs });
  }


  /** Gives a slice's units back to the node that granted them, and ends the lease. */
  private end(lease: Lease): void {
    const keys = this.leases.get(lease.action);
    if (keys?.get(lease.key) !== lease) return;
    keys.delete(lease.key);
    if (keys.size === 0) this.leases.delete(lease.action);
    this.count--;
    if (lease.units > 0) this.giveBack(lease.grantedBy, lease.action, lease.key, lease.units, lease.epoch);
    lease.units = 0;
  }

  /** Queues a return for the node that granted the units (one frame per owner and turn); the units are never admitted here again. */
  private giveBack(to: string, action: string, key: string, units: number, epoch: number): void {
    const address = this.components.view.addressOf(to);
    if (address === undefined) {
      this.counters.unitsLost += units;
      return;
    }
    this.outbox.giveBack(address, { action, key, units, epoch });
  }

  /** Rates sampled, idle leases given back, expired ones ended, asks that timed out forgotten: its timer's task (tests call it). Whether work remains. */
  sweep(): boolean {
    if (this.closed) return false;
    const nowMs = this.components.clock.now();
    const elapsedMs = nowMs - this.lastRateMs;
    const sample = elapsedMs >= this.meter.periodMs;
    if (sample) {
      this.lastRateMs = nowMs;
      this.meter.reset();
    }
    for (const keys of this.leases.values()) {
      for (const lease of keys.values()) {
        if (sample) {
          lease.ratePerSec = lease.ratePerSec / 2 + ((lease.used / elapsedMs) * 1000) / 2;
          lease.used = 0;
        }
        if (nowMs - lease.lastUsedMs >= this.options.idleMs) {
          this.end(lease); // the key cooled: what is left goes back
        } else if (nowMs >= lease.expiresAtMs && lease.units > 0) {
          // Ended: never admitted from again. Given back in case its window is still on at the owner (its TTL is shorter).
          this.giveBack(lease.grantedBy, lease.action, lease.key, lease.units, lease.epoch);
          lease.units = 0;
        }
      }
    }
    for (const [id, ask] of this.pending) {
      if (nowMs - ask.sentAtMs < this.options.leaseTtlMs) break; // in send order
      this.pending.delete(id);
      ask.lease.asking = false;
    }
    return this.count > 0 || this.pending.size > 0 || this.meter.size > 0;
  }
}
