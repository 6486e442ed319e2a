import type { Policies } from './policies.js';
import { invalidArgument } from '../common/errors.js';
import { FRESH_AT, NO_WAIT, STATE_STRIDE, algorithms, initState, newStepOut, reservationOf, stepState, type StepOut } from './algorithms/index.js';
import { AlgorithmId, type Decision, type RateLimitRequest, type Reservation, type ResolvedParams } from './types.js';
import { checkedRemaining, copyResolvedParams, newResolvedParams, parseAlgorithm, resolveRequest, scaleLimits } from './validate.js';
import { SharedCapacity, fairShareDefaults } from './fair-share.js';
import { shapeMismatchError } from './request-shape.js';
import { clampPeerState, plausibleWithoutLimits } from './peer-state.js';
import { NONE, StoreSlots } from './store-slots.js';
import type { ImportMode, StoreStats } from './store-options.js';

export { storeDefaults, type EntryVisitor, type ImportMode, type StoreOptions, type StoreStats } from './store-options.js';

/** Actions counted by name in decisionsPerAction(); later ones share one bucket. */
export const METRIC_ACTIONS = 100;

/** refuseOrFresh(): the slot is to be converted to the request's shape (the policies changed it). */
const CONVERT = 2;

/**
 * In-memory state of (action, key) pairs, and the decisions on it: the algorithms, the
 * request-shape rule, imports from peers, fair share. The slots themselves: store-slots.ts.
 */
export class LimiterStore extends StoreSlots {
  /** Most calls name the same action as the one before: skip one Map lookup for them. */
  private lastAction = '';
  private lastTable: Map<string, number> | undefined;
  /** Allowed and rejected per action id (the first METRIC_ACTIONS; then one bucket for the rest). */
  private readonly decisionsByAction = new Float64Array((METRIC_ACTIONS + 1) * 2);

  private readonly params = newResolvedParams();
  private readonly out: StepOut = newStepOut();
  private readonly scratch = new Float64Array(STATE_STRIDE);
  private readonly pendingScratch = new Float64Array(STATE_STRIDE);

  /** Limits declared once (see policies.ts): what they set wins over a request's own fields. */
  policies: Policies | undefined = undefined;
  /** Adaptive limits: every limit this store validates is scaled by it (1: as given; see adaptive.ts). */
  loadFactor = 1;
  /** Weighted fair share: the shared capacities in use (policies' `shared`), by action. */
  private readonly shared = new Map<string, SharedCapacity>();
  private sharedOf: Policies | undefined;

  /** The hot path: validates, decides and updates in place. Returns a fresh Decision. */
  allow(request: RateLimitRequest): Decision {
    const out = this.decide(request, NO_WAIT);
    return {
      allowed: out.allowed,
      limit: this.params.limit,
      remaining: out.remaining,
      resetAtMs: out.resetAtMs,
      retryAfterMs: out.retryAfterMs,
    };
  }

  /** Like allow() but returns only the verdict: no allocation at all for a known key. */
  isAllowed(request: RateLimitRequest): boolean {
    return this.decide(request, NO_WAIT).allowed;
  }

  /**
   * Takes capacity now for a request that may run up to maxWaitMs later. Granted
   * reservations queue in arrival order: later callers wait behind them.
   */
  reserve(request: RateLimitRequest, maxWaitMs: number): Reservation {
    if (typeof maxWaitMs !== 'number' || !(maxWaitMs >= 0 && maxWaitMs <= 86_400_000)) {
      throw invalidArgument('maxWaitMs', `must be a number from 0 to 86400000 (24 h), got ${String(maxWaitMs)}`);
    }
    return this.decideResolved(this.resolve(request, this.params), maxWaitMs);
  }

  /**
   * Decides a request its caller has already validated with resolveRequest (the cluster
   * node resolves once to route, then decides): a plain allow with maxWaitMs < 0, else a
   * reservation. Returns a fresh Reservation.
   */
  decideResolved(p: ResolvedParams, maxWaitMs: number): Reservation {
    return reservationOf(this.decideParams(p, maxWaitMs), p.limit);
  }

  /**
   * "What does this request ask for, here and now": validated into `out` with what the
   * policies set, the load factor, and the user's fair share of a shared capacity. Every
   * path that resolves a request calls it (the limiter, and a node before it routes).
   */
  resolve(request: RateLimitRequest, out: ResolvedParams): ResolvedParams {
    const policies = this.policies;
    if (policies === undefined) return resolveRequest(request, out, undefined, this.loadFactor);
    const said = policies.sayFor(request);
    resolveRequest(request, out, said, this.loadFactor);
    const capacity = policies.sharedCapacity(out.action);
    // A share's weight is the operator's (the policies'), never one a caller claims in its request.
    if (capacity !== undefined) this.applyFairShare(out, capacity, said?.weight ?? 1);
    return out;
  }

  /** The shared capacities in use, by action (the cluster's coordinator reads their demand and sets their allocations). */
  sharedCapacities(): ReadonlyMap<string, SharedCapacity> {
    if (this.sharedOf !== this.policies) return new Map();
    return this.shared;
  }

  /** Lowers `p`'s limit to its user's share of the action's shared capacity (policies' `shared`). */
  private applyFairShare(p: ResolvedParams, capacityPerMs: number, weight: number): void {
    if (this.sharedOf !== this.policies) {
      this.shared.clear(); // new policies: new capacities, demand measured afresh
      this.sharedOf = this.policies;
    }
    const nowMs = this.clock.now();
    let shared = this.shared.get(p.action);
    if (shared === undefined) this.shared.set(p.action, (shared = new SharedCapacity(capacityPerMs, fairShareDefaults, nowMs)));
    const share = shared.ask(p.key, weight, p.limit / p.windowMs, p.cost, nowMs);
    const limit = Math.floor(share * p.windowMs);
    if (limit < p.limit) scaleLimits(p, Math.max(1, limit) / p.limit);
  }

  /**
   * An operator's look at a key: what a request of cost 1 would find now (remaining, reset
   * time), computed on a copy: nothing is consumed, stored or counted.
   */
  inspect(request: RateLimitRequest): Decision {
    return this.inspectResolved(this.resolve({ ...request, cost: 0 }, this.params));
  }

  /** inspect() for a request already validated (a node's owner side). */
  inspectResolved(p: Readonly<ResolvedParams>): Decision {
    const nowMs = this.clock.now();
    const slot = this.tables.get(p.action)?.get(p.key) ?? NONE;
    const peek: ResolvedParams = p.cost === 0 ? p : copyResolvedParams(p, 0);
    const reshaped = slot === NONE ? true : this.shapeDiffers(slot, p) ? this.refuseOrFresh(slot, p, nowMs) : false;
    if (reshaped === CONVERT) this.peekConverted(slot, peek, nowMs, NO_WAIT);
    else {
      if (reshaped) initState(this.scratch, 0, peek, nowMs);
      else this.copyHeld(slot, peek, nowMs);
      stepState(this.scratch, 0, peek, nowMs, NO_WAIT, this.out);
    }
    return { allowed: this.out.remaining >= 1, limit: p.limit, remaining: this.out.remaining, resetAtMs: this.out.resetAtMs, retryAfterMs: 0 };
  }

  /**
   * An operator's Set: the key's state becomes one in which `remaining` units could be taken
   * now; undefined gives the key its full allowance (Reset). Validated like a request (a bad
   * one changes nothing). Marked changed, so replication carries it like a decision.
   * Returns the key as inspect() now sees it.
   */
  setRemaining(request: RateLimitRequest, remaining: number | undefined): Decision {
    return this.setRemainingResolved(this.resolve({ ...request, cost: 0 }, this.params), remaining);
  }

  /** setRemaining() for a request already validated (a node's owner side). */
  setRemainingResolved(p: Readonly<ResolvedParams>, remaining: number | undefined): Decision {
    const target = checkedRemaining(p, remaining);
    const nowMs = this.clock.now();
    let slot = this.tables.get(p.action)?.get(p.key) ?? NONE;
    if (slot === NONE) slot = this.insert(p.action, p.key, p.algorithm);
    else this.touch(slot);
    // The operator's Set re-describes the key: its shape becomes the request's.
    this.algorithmOf[slot] = p.algorithm;
    this.setShape(slot, p);
    // The operator's value wins over a handed-over state waiting to be merged.
    if (this.pendingFlag[slot] === 1) this.dropPendingMerge(slot);
    algorithms[p.algorithm]!.setRemaining(this.cells, slot * STATE_STRIDE, p, nowMs, target);
    this.mutationCount++;
    if (this.options.trackChanges) this.markChanged(slot);
    return this.inspectResolved(p);
  }

  /** allow() for a request already validated into `p` (policy handles). */
  allowResolved(p: ResolvedParams): Decision {
    const out = this.decideParams(p, NO_WAIT);
    return { allowed: out.allowed, limit: p.limit, remaining: out.remaining, resetAtMs: out.resetAtMs, retryAfterMs: out.retryAfterMs };
  }

  isAllowedResolved(p: ResolvedParams): boolean {
    return this.decideParams(p, NO_WAIT).allowed;
  }

  private decide(request: RateLimitRequest, maxWaitMs: number): StepOut {
    return this.decideParams(this.resolve(request, this.params), maxWaitMs);
  }

  private decideParams(p: ResolvedParams, maxWaitMs: number): StepOut {
    const nowMs = this.clock.now();
    const out = this.out;
    let table = this.lastTable;
    if (p.action !== this.lastAction || table === undefined) {
      table = this.tables.get(p.action);
      if (table !== undefined) {
        this.lastAction = p.action;
        this.lastTable = table;
      }
    }
    let slot = table?.get(p.key) ?? NONE;
    if (slot === NONE) {
      if (p.cost === 0) return this.peekFresh(p, nowMs, maxWaitMs);
      slot = this.insert(p.action, p.key, p.algorithm);
      this.setShape(slot, p);
      initState(this.cells, slot * STATE_STRIDE, p, nowMs);
    } else {
      if (this.shapeDiffers(slot, p) && this.reshape(slot, p, nowMs, maxWaitMs)) return out;
      this.touch(slot);
      // A peek answers from a copy: it never writes a state (not even a pending merge).
      if (p.cost === 0) return this.peekHeld(slot, p, nowMs, maxWaitMs);
      if (this.unverified[slot] === 1) this.verify(slot, p, nowMs);
    }
    if (this.pendingFlag[slot] === 1) this.applyPendingMerge(p, slot, nowMs);
    stepState(this.cells, slot * STATE_STRIDE, p, nowMs, maxWaitMs, out);
    this.mutationCount++;
    this.count(out.allowed, this.actionOf[slot]!);
    if (out.allowed && p.cost > 0 && this.options.trackChanges) this.markChanged(slot);
    return out;
  }

  /**
   * A request whose shape differs from the held slot's: throws FAILED_PRECONDITION (nothing
   * changed) while the state is in use; else gives the slot the request's shape (a fresh
   * state re-initialised under it, an imported one its window). Returns true when it answered
   * a peek into `out` (nothing stored).
   */
  private reshape(slot: number, p: ResolvedParams, nowMs: number, maxWaitMs: number): boolean {
    const fresh = this.refuseOrFresh(slot, p, nowMs);
    if (fresh === CONVERT) {
      if (p.cost === 0) {
        this.peekConverted(slot, p, nowMs, maxWaitMs);
        this.count(this.out.allowed, this.actionOf[slot]!);
        return true;
      }
      this.convert(slot, p, nowMs);
      return false;
    }
    if (p.cost === 0) {
      if (fresh) this.peekFresh(p, nowMs, maxWaitMs);
      else this.peekHeld(slot, p, nowMs, maxWaitMs);
      return true;
    }
    if (fresh) {
      this.algorithmOf[slot] = p.algorithm;
      this.unverified[slot] = 0;
      initState(this.cells, slot * STATE_STRIDE, p, nowMs);
    }
    this.setShape(slot, p);
    return false;
  }

  /** A peek at a key with no state (or a fresh one of another shape): answered from a fresh state, nothing stored. */
  private peekFresh(p: ResolvedParams, nowMs: number, maxWaitMs: number): StepOut {
    initState(this.scratch, 0, p, nowMs);
    stepState(this.scratch, 0, p, nowMs, maxWaitMs, this.out);
    this.count(this.out.allowed, this.actionIds.get(p.action) ?? -1);
    return this.out;
  }

  /** A peek at a held key: answered from a copy of its state (checked and merged as a decision would), nothing stored. */
  private peekHeld(slot: number, p: ResolvedParams, nowMs: number, maxWaitMs: number): StepOut {
    this.copyHeld(slot, p, nowMs);
    stepState(this.scratch, 0, p, nowMs, maxWaitMs, this.out);
    this.count(this.out.allowed, this.actionOf[slot]!);
    return this.out;
  }

  /** Copies the slot's state into scratch as the next decision would see it: checked if imported, with its pending merge. */
  private copyHeld(slot: number, p: Readonly<ResolvedParams>, nowMs: number): void {
    const scratch = this.scratch;
    const base = slot * STATE_STRIDE;
    for (let i = 0; i < STATE_STRIDE; i++) scratch[i] = this.cells[base + i]!;
    if (this.unverified[slot] === 1) clampPeerState(scratch, 0, p, nowMs);
    if (this.pendingFlag[slot] !== 1) return;
    for (let m = this.pendingMerges.get(slot); m !== undefined; m = m.next) {
      if (m.algorithm !== p.algorithm) continue;
      const other = this.pendingScratch;
      other.set(m.cells);
      clampPeerState(other, 0, p, nowMs);
      algorithms[p.algorithm]!.merge(scratch, 0, other, 0, p, nowMs);
    }
  }

  /**
   * For a request whose shape differs from the slot's: whether the slot's state is fresh (it
   * holds nothing to keep, so the request's shape may replace it). False when the slot's
   * window is not known yet (an imported state of the same algorithm: it takes the request's).
   * Throws FAILED_PRECONDITION, counted, when the state is in use.
   */
  private refuseOrFresh(slot: number, p: Readonly<ResolvedParams>, nowMs: number): boolean | typeof CONVERT {
    const algorithm = this.algorithmOf[slot]! as AlgorithmId;
    const windowMs = this.windowOf[slot]!;
    if (algorithm === p.algorithm && windowMs === 0) return false;
    const freshAtMs = this.cells[slot * STATE_STRIDE + FRESH_AT]!;
    if (freshAtMs <= nowMs) return true;
    if (this.policiesGiveShape(slot, p)) return CONVERT;
    this.counters.shapeMismatches++;
    throw shapeMismatchError(algorithm, windowMs, this.calendarOf[slot]!, freshAtMs, p);
  }

  /**
   * Whether this store's policies give the request every shape field in which it differs from
   * the slot's (asked for the key and action; a group's rule is not seen here): the operator
   * changed the key's algorithm or window, and no caller can choose another while they do.
   */
  private policiesGiveShape(slot: number, p: Readonly<ResolvedParams>): boolean {
    const said = this.policies?.sayFor({ key: p.key, action: p.action });
    if (said === undefined) return false;
    if (this.algorithmOf[slot] !== p.algorithm && (said.algorithm === undefined || parseAlgorithm(said.algorithm) !== p.algorithm)) return false;
    if (this.windowOf[slot] === p.windowMs && this.calendarOf[slot] === p.calendar) return true;
    return p.calendar !== null ? said.calendar === p.calendar : said.calendar === undefined && said.windowMs === p.windowMs;
  }

  /** What the slot's state leaves now, read under its own shape with the request's limits: copied into scratch and stepped there. */
  private remainingUnderHeldShape(slot: number, p: Readonly<ResolvedParams>, nowMs: number): number {
    const windowMs = this.windowOf[slot]!;
    const held = copyResolvedParams(p, 0);
    held.algorithm = this.algorithmOf[slot]! as AlgorithmId;
    held.windowMs = windowMs === 0 ? p.windowMs : windowMs;
    held.calendar = this.calendarOf[slot]!;
    held.capacity = held.algorithm === AlgorithmId.TokenBucket || held.algorithm === AlgorithmId.Gcra ? p.capacity : p.limit;
    this.copyHeld(slot, held, nowMs);
    stepState(this.scratch, 0, held, nowMs, NO_WAIT, this.out);
    return this.out.remaining;
  }

  /** The slot moved to the request's shape (the policies' new one) with no more remaining than it had, nor than the new shape holds. */
  private convert(slot: number, p: ResolvedParams, nowMs: number): void {
    const target = Math.min(this.remainingUnderHeldShape(slot, p, nowMs), checkedRemaining(p, undefined));
    if (this.pendingFlag[slot] === 1) this.dropPendingMerge(slot);
    this.algorithmOf[slot] = p.algorithm;
    this.setShape(slot, p);
    this.unverified[slot] = 0;
    algorithms[p.algorithm]!.setRemaining(this.cells, slot * STATE_STRIDE, p, nowMs, target);
    this.counters.shapeConversions++;
    this.mutationCount++;
    if (this.options.trackChanges) this.markChanged(slot);
  }

  /** A peek at a key the policies moved to another shape: the conversion, on scratch. */
  private peekConverted(slot: number, p: ResolvedParams, nowMs: number, maxWaitMs: number): void {
    const target = Math.min(this.remainingUnderHeldShape(slot, p, nowMs), checkedRemaining(p, undefined));
    algorithms[p.algorithm]!.setRemaining(this.scratch, 0, p, nowMs, target);
    stepState(this.scratch, 0, p, nowMs, maxWaitMs, this.out);
  }

  private shapeDiffers(slot: number, p: Readonly<ResolvedParams>): boolean {
    return this.algorithmOf[slot] !== p.algorithm || this.windowOf[slot] !== p.windowMs || this.calendarOf[slot] !== p.calendar;
  }

  private setShape(slot: number, p: Readonly<ResolvedParams>): void {
    this.windowOf[slot] = p.windowMs;
    this.calendarOf[slot] = p.calendar;
  }

  /** An imported state's first use: clamped to what the key's limits allow (peer-state.ts), counted when it was not. */
  private verify(slot: number, p: ResolvedParams, nowMs: number): void {
    this.unverified[slot] = 0;
    if (clampPeerState(this.cells, slot * STATE_STRIDE, p, nowMs)) this.counters.implausibleStates++;
  }

  private applyPendingMerge(p: ResolvedParams, slot: number, nowMs: number): void {
    const pending = this.pendingMerges.get(slot);
    this.dropPendingMerge(slot);
    for (let m = pending; m !== undefined; m = m.next) {
      if (m.algorithm !== p.algorithm) continue;
      if (clampPeerState(m.cells, 0, p, nowMs)) this.counters.implausibleStates++;
      algorithms[p.algorithm]!.merge(this.cells, slot * STATE_STRIDE, m.cells, 0, p, nowMs);
    }
  }

  /**
   * Stores a state received from another node (already re-based onto this clock).
   * 'replace' overwrites (a replica taking the owner's word). 'merge' keeps both views:
   * an absent key takes the state as is; a held key merges it conservatively at its next
   * decision, when the request supplies the limits a merge needs.
   */
  importEntry(action: string, key: string, algorithm: AlgorithmId, cells: Float64Array, base: number, mode: ImportMode): void {
    if (!plausibleWithoutLimits(algorithm, cells, base)) {
      this.counters.implausibleStates++;
      return;
    }
    let slot = this.tables.get(action)?.get(key);
    if (slot !== undefined && (mode === 'merge' || mode === 'handed' || (mode === 'replica' && this.decidedHere[slot] === 1))) {
      this.addPendingMerge(slot, algorithm, cells, base); // bounded: past it, the local view stands
      return;
    }
    if (slot === undefined) slot = this.insert(action, key, algorithm);
    else this.touch(slot);
    // A state merged into a key new here is the owner's now (handed over, or loaded from a
    // snapshot): listed as changed, so its replicas get it; every other import is a copy.
    if (this.options.trackChanges) {
      if (mode === 'merge') this.markChanged(slot);
      else this.decidedHere[slot] = mode === 'handed' ? 1 : 0;
    }
    // A state of another algorithm replaces the key's shape; its window is the next request's.
    if (this.algorithmOf[slot] !== algorithm) this.windowOf[slot] = 0;
    this.algorithmOf[slot] = algorithm;
    this.unverified[slot] = 1;
    const into = slot * STATE_STRIDE;
    for (let i = 0; i < STATE_STRIDE; i++) this.cells[into + i] = cells[base + i]!;
    this.mutationCount++;
  }



  private count(allowed: boolean, actionId: number): void {
    if (allowed) this.counters.allowed++;
    else this.counters.rejected++;
    const bucket = actionId >= 0 && actionId < METRIC_ACTIONS ? actionId : METRIC_ACTIONS;
    this.decisionsByAction[bucket * 2 + (allowed ? 0 : 1)]!++;
  }

  /**
   * Decisions per action since start: the first METRIC_ACTIONS actions this store met by
   * name, every later one together as "(other)" — a bound on a metric's labels.
   */
  decisionsPerAction(): { action: string; allowed: number; rejected: number }[] {
    const out: { action: string; allowed: number; rejected: number }[] = [];
    for (let id = 0; id <= METRIC_ACTIONS; id++) {
      const allowed = this.decisionsByAction[id * 2]!;
      const rejected = this.decisionsByAction[id * 2 + 1]!;
      if (allowed + rejected === 0) continue;
      out.push({ action: id === METRIC_ACTIONS ? '(other)' : this.actionNames[id]!, allowed, rejected });
    }
    return out;
  }

  stats(): StoreStats {
    const c = this.counters;
    return {
      decisions: c.allowed + c.rejected,
      allowed: c.allowed,
      rejected: c.rejected,
      keys: this.size,
      evictions: c.evictions,
      expired: c.expired,
      shapeMismatches: c.shapeMismatches,
      shapeConversions: c.shapeConversions,
      implausibleStates: c.implausibleStates,
    };
  }

  /**
   * Writes of a held key's state since start (decisions, imports, sets): unchanged means
   * every key's state is as it was (only time has passed), e.g. for a snapshot to skip.
   */
  get mutations(): number {
    return this.mutationCount;
  }
}
