import { FRESH_AT, NO_WAIT, STATE_STRIDE, algorithmImpl, newStepOut, reservationOf, type StepOut } from './algorithms/index.js';
import { ALGORITHMS, type Decision, type LimiterState, type RateLimitRequest, type Reservation, type ResolvedParams } from './types.js';
import { newResolvedParams, resolveRequest } from './validate.js';

/**
 * The algorithms as pure functions of (state, request, now) → (state, decision), for
 * callers that hold state themselves (tests, replication, snapshots). The store runs
 * the same step functions in place over its typed arrays.
 */

export interface Step<D> {
  state: LimiterState;
  decision: D;
  /** Time at which this state is equivalent to a fresh one. */
  freshAtMs: number;
}

function toCells(state: LimiterState | undefined, p: ResolvedParams, nowMs: number): Float64Array {
  const cells = new Float64Array(STATE_STRIDE);
  if (state !== undefined && state.algorithm === ALGORITHMS[p.algorithm]) {
    cells[0] = state.s0;
    cells[1] = state.s1;
    cells[2] = state.s2;
  } else {
    // No state yet, or the key's algorithm was changed by configuration: start afresh.
    algorithmImpl(p.algorithm).init(cells, 0, p, nowMs);
  }
  return cells;
}

function fromCells(cells: Float64Array, p: ResolvedParams): LimiterState {
  return { algorithm: ALGORITHMS[p.algorithm]!, s0: cells[0]!, s1: cells[1]!, s2: cells[2]! };
}

function run(state: LimiterState | undefined, request: RateLimitRequest, nowMs: number, maxWaitMs: number) {
  const p = resolveRequest(request, newResolvedParams());
  const cells = toCells(state, p, nowMs);
  const out: StepOut = newStepOut();
  algorithmImpl(p.algorithm).step(cells, 0, p, nowMs, maxWaitMs, out);
  return { p, cells, out };
}

export function decide(state: LimiterState | undefined, request: RateLimitRequest, nowMs: number): Step<Decision> {
  const { p, cells, out } = run(state, request, nowMs, NO_WAIT);
  return {
    state: fromCells(cells, p),
    decision: { allowed: out.allowed, limit: p.limit, remaining: out.remaining, resetAtMs: out.resetAtMs, retryAfterMs: out.retryAfterMs },
    freshAtMs: cells[FRESH_AT]!,
  };
}

export function reserve(
  state: LimiterState | undefined,
  request: RateLimitRequest,
  nowMs: number,
  maxWaitMs: number,
): Step<Reservation> {
  const { p, cells, out } = run(state, request, nowMs, Math.max(0, maxWaitMs));
  return {
    state: fromCells(cells, p),
    decision: reservationOf(out, p.limit),
    freshAtMs: cells[FRESH_AT]!,
  };
}

/** A state that grants no more than `a` or `b` would. The request supplies the limits. */
export function merge(a: LimiterState, b: LimiterState, request: RateLimitRequest, nowMs: number): LimiterState {
  const p = resolveRequest(request, newResolvedParams());
  const name = ALGORITHMS[p.algorithm];
  if (a.algorithm !== name) return b.algorithm === name ? b : a;
  if (b.algorithm !== name) return a;
  const left = toCells(a, p, nowMs);
  const right = toCells(b, p, nowMs);
  algorithmImpl(p.algorithm).merge(left, 0, right, 0, p, nowMs);
  return fromCells(left, p);
}

/** Moves a state's times by deltaMs, e.g. from the sender's clock onto the receiver's. */
export function rebase(state: LimiterState, deltaMs: number): LimiterState {
  const id = ALGORITHMS.indexOf(state.algorithm);
  const cells = new Float64Array([state.s0, state.s1, state.s2, 0]);
  algorithmImpl(id).rebase(cells, 0, deltaMs);
  return { algorithm: state.algorithm, s0: cells[0]!, s1: cells[1]!, s2: cells[2]! };
}
