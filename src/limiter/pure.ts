import { FRESH_AT, NO_WAIT, STATE_STRIDE, algorithmImpl, newStepOut, reservationOf, type StepOut } from './algorithms/index.js';
import { calendarOf, type Calendar, type CalendarUnit } from './calendar.js';
import { checkShape, type HeldShape } from './request-shape.js';
import { ALGORITHMS, AlgorithmId, type Decision, type LimiterState, type RateLimitRequest, type Reservation, type ResolvedParams } from './types.js';
import { newResolvedParams, resolveRequest } from './validate.js';

/**
 * The algorithms as pure functions of (state, request, now) → (state, decision), for
 * callers that hold state themselves (tests, replication, snapshots). The store runs
 * the same step functions in place over its typed arrays, and these functions give the
 * same answers as the store for the same requests: a key keeps its shape while its state is
 * in use (docs/request-shape.md) — a request of another shape throws FAILED_PRECONDITION —
 * and a peek (cost 0) changes nothing.
 */

/**
 * A state as these functions return it: its cells, and what the store keeps beside them — the
 * shape it was written under and when it is fresh. Pass it back as it is. A LimiterState
 * without these fields (store.getState(), or kept by an older version) takes the window of the
 * next request of its algorithm; a request of another algorithm finds it fresh or not by reading
 * it under the request's window.
 */
export interface ShapedState extends LimiterState {
  /** The window the state was written under (with a calendar: its longest period). */
  windowMs?: number;
  /** The calendar unit it was written under, with its timeZone; absent for a window in ms. */
  calendar?: CalendarUnit;
  timeZone?: string;
  /** When the state is equivalent to a fresh one: from then on, a request of another shape may replace it. */
  freshAtMs?: number;
  /** A peek's answer where there was no state: it holds nothing, and passing it back is passing none. */
  empty?: true;
}

export interface Step<D> {
  /** The key's state after the request: for a peek (cost 0), the state it was given. */
  state: ShapedState;
  decision: D;
  /** Time at which this state is equivalent to a fresh one. */
  freshAtMs: number;
}

/** The held shape of `state` for a request `p`, or undefined when it holds nothing (none, a peek's empty state, an unknown algorithm). */
function heldShapeOf(state: ShapedState | undefined, p: ResolvedParams, nowMs: number): HeldShape | undefined {
  if (state === undefined || state.empty === true) return undefined;
  const algorithm = ALGORITHMS.indexOf(state.algorithm);
  if (algorithm < 0) return undefined;
  let calendar: Calendar | null = null;
  let windowMs = state.windowMs ?? 0;
  if (state.calendar !== undefined) {
    try {
      calendar = calendarOf(state.calendar, state.timeZone);
      windowMs = calendar.longestMs;
    } catch {
      windowMs = 0; // a calendar this process cannot make: the window is taken as not recorded
    }
  }
  const held: HeldShape = { algorithm, windowMs, calendar, freshAtMs: nowMs };
  if (state.freshAtMs !== undefined) held.freshAtMs = state.freshAtMs;
  else if (algorithm !== p.algorithm || windowMs !== 0) held.freshAtMs = unrecordedFreshAt(state, held, p, nowMs);
  return held;
}

/**
 * When a state without freshAtMs is fresh (needed when its shape is not the request's): what
 * its own algorithm computes for it at cost 0, under its window (the request's where it has
 * none) and the request's limits. A state that algorithm cannot read so is taken as fresh (as
 * such a state always was: started afresh).
 */
function unrecordedFreshAt(state: ShapedState, held: HeldShape, p: ResolvedParams, nowMs: number): number {
  const windowed = held.algorithm === AlgorithmId.FixedWindow || held.algorithm === AlgorithmId.SlidingWindow;
  const calendar = held.calendar ?? (windowed && held.windowMs === 0 ? p.calendar : null);
  const under: ResolvedParams = { ...p, algorithm: held.algorithm, calendar, windowMs: calendar?.longestMs ?? (held.windowMs || p.windowMs), cost: 0 };
  under.capacity = windowed ? p.limit : p.capacity;
  try {
    const cells = cellsOf(state, nowMs);
    algorithmImpl(held.algorithm).step(cells, 0, under, nowMs, NO_WAIT, newStepOut());
    return cells[FRESH_AT]!;
  } catch {
    return nowMs;
  }
}

function cellsOf(state: ShapedState, freshAtMs: number): Float64Array {
  const cells = new Float64Array(STATE_STRIDE);
  cells[0] = state.s0;
  cells[1] = state.s1;
  cells[2] = state.s2;
  cells[FRESH_AT] = freshAtMs;
  return cells;
}

function fromCells(cells: Float64Array, p: ResolvedParams): ShapedState {
  const state: ShapedState = { algorithm: ALGORITHMS[p.algorithm]!, s0: cells[0]!, s1: cells[1]!, s2: cells[2]!, windowMs: p.windowMs };
  if (p.calendar !== null) {
    state.calendar = p.calendar.unit;
    state.timeZone = p.calendar.timeZone;
  }
  state.freshAtMs = cells[FRESH_AT]!;
  return state;
}

/**
 * The store's decideParams, on a state held by the caller: the shape rule (checkShape, which
 * throws), then the algorithm's step on a copy. A peek returns the state it was given, or an
 * empty one where there was none: it never creates, refills or re-shapes a state.
 */
function run(state: ShapedState | undefined, request: RateLimitRequest, nowMs: number, maxWaitMs: number): { p: ResolvedParams; next: ShapedState; out: StepOut; freshAtMs: number } {
  const p = resolveRequest(request, newResolvedParams());
  const held = heldShapeOf(state, p, nowMs);
  const impl = algorithmImpl(p.algorithm);
  let cells: Float64Array;
  if (state !== undefined && held !== undefined && checkShape(held, p, nowMs) !== 'fresh') cells = cellsOf(state, held.freshAtMs);
  else {
    cells = new Float64Array(STATE_STRIDE);
    impl.init(cells, 0, p, nowMs);
  }
  const out: StepOut = newStepOut();
  impl.step(cells, 0, p, nowMs, maxWaitMs, out);
  const freshAtMs = cells[FRESH_AT]!;
  if (p.cost > 0) return { p, next: fromCells(cells, p), out, freshAtMs };
  if (state !== undefined) return { p, next: state, out, freshAtMs };
  impl.init(cells, 0, p, nowMs);
  return { p, next: { ...fromCells(cells, p), empty: true }, out, freshAtMs };
}

export function decide(state: LimiterState | undefined, request: RateLimitRequest, nowMs: number): Step<Decision> {
  const { p, next, out, freshAtMs } = run(state, request, nowMs, NO_WAIT);
  return {
    state: next,
    decision: { allowed: out.allowed, limit: p.limit, remaining: out.remaining, resetAtMs: out.resetAtMs, retryAfterMs: out.retryAfterMs },
    freshAtMs,
  };
}

export function reserve(
  state: LimiterState | undefined,
  request: RateLimitRequest,
  nowMs: number,
  maxWaitMs: number,
): Step<Reservation> {
  const { p, next, out, freshAtMs } = run(state, request, nowMs, Math.max(0, maxWaitMs));
  return { state: next, decision: reservationOf(out, p.limit), freshAtMs };
}

/**
 * A state that grants no more than `a` or `b` would. The request supplies the limits and the
 * shape (as the store's merge of a peer's state: the wire carries no window); a side of another
 * algorithm, or an empty one, is dropped.
 */
export function merge(a: LimiterState, b: LimiterState, request: RateLimitRequest, nowMs: number): ShapedState {
  const p = resolveRequest(request, newResolvedParams());
  const name = ALGORITHMS[p.algorithm];
  const left: ShapedState = a;
  const right: ShapedState = b;
  if (left.empty === true) return right;
  if (right.empty === true) return left;
  if (a.algorithm !== name) return b.algorithm === name ? b : a;
  if (b.algorithm !== name) return a;
  const cells = cellsOf(left, left.freshAtMs ?? NaN);
  const impl = algorithmImpl(p.algorithm);
  impl.merge(cells, 0, cellsOf(right, right.freshAtMs ?? NaN), 0, p, nowMs);
  if (Number.isNaN(cells[FRESH_AT])) {
    // A side without its freshAtMs (windows keep the later one): what a peek at the merged state finds.
    const copy = cells.slice();
    impl.step(copy, 0, { ...p, cost: 0 }, nowMs, NO_WAIT, newStepOut());
    cells[FRESH_AT] = copy[FRESH_AT]!;
  }
  return fromCells(cells, p);
}

/** Moves a state's times by deltaMs, e.g. from the sender's clock onto the receiver's. */
export function rebase(state: LimiterState, deltaMs: number): ShapedState {
  const shaped: ShapedState = state;
  const id = ALGORITHMS.indexOf(state.algorithm);
  const cells = new Float64Array([state.s0, state.s1, state.s2, shaped.freshAtMs ?? 0]);
  algorithmImpl(id).rebase(cells, 0, deltaMs);
  const moved: ShapedState = { ...shaped, s0: cells[0]!, s1: cells[1]!, s2: cells[2]! };
  if (shaped.freshAtMs !== undefined) moved.freshAtMs = cells[FRESH_AT]!;
  return moved;
}
