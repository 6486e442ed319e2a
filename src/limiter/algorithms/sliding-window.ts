import type { ResolvedParams } from '../types.js';
import { FRESH_AT, UNIT_EPSILON, delayFrom, type AlgorithmImpl, type StepOut } from './step.js';
import { nextUp } from './float.js';
import { targetWindow, windowBoundaryOf, windowLengthOf, windowStart, windowStartOf, windowsAfterOf, windowsBetweenOf } from './windows.js';

/**
 * Sliding-window counter (the two-counter approximation): at fraction f of the current
 * aligned window, the estimate is previous × (1 − f) + current, and a request is
 * allowed while estimate + cost ≤ L.
 *
 * The approximation assumes the previous window's units were spread evenly. Bounds it
 * does guarantee: at most L per aligned window, and at most 2L − 1 in any interval of
 * length windowMs (reached only by an adversary that bursts at the very end of one
 * window and again late in the next). For evenly spread traffic it tracks a true
 * sliding window closely, without the fixed window's boundary burst.
 *
 * With calendar windows (p.calendar) f is measured against the current period's length, so
 * the previous period's units decay over the current one, however long either is; the
 * bounds hold with "an interval of length windowMs" read as "the current period".
 *
 * Cells: [windowStartMs, current, previous]. current > L only through reservations.
 */
const START = 0;
const CURRENT = 1;
const PREVIOUS = 2;

function advanceTo(cells: Float64Array, base: number, p: ResolvedParams, start: number): void {
  const stored = cells[base + START]!;
  if (stored >= start) return;
  const windows = windowsBetweenOf(p, stored, start);
  const current = cells[base + CURRENT]!;
  // Units queued past the end of a window move into the next one.
  const previous = Math.min(p.limit, Math.max(0, current - (windows - 1) * p.limit));
  cells[base + START] = start;
  cells[base + PREVIOUS] = previous;
  cells[base + CURRENT] = Math.max(0, current - windows * p.limit);
}

/**
 * The first moment in window `ahead` (counted from the window at `start`) at which the
 * previous window's units, decaying linearly, leave `room`: evaluated with the same
 * arithmetic step() uses, stepping up by ulps past rounding, so it is never early.
 */
function decayedEnough(p: ResolvedParams, start: number, ahead: number, previous: number, room: number): number {
  if (previous <= room + UNIT_EPSILON) return windowBoundaryOf(p, start, ahead);
  if (room <= 0) return windowBoundaryOf(p, start, ahead + 1);
  const boundary = windowBoundaryOf(p, start, ahead);
  const calendar = p.calendar;
  // A calendar's boundaries are exact period starts; a fixed window's may be a hair off its grid.
  const windowFloor = calendar === null ? windowStart(boundary, p.windowMs) : boundary;
  const length = calendar === null ? p.windowMs : calendar.lengthOf(boundary);
  let at = Math.max(boundary, windowFloor + (1 - room / previous) * length);
  for (let i = 0; i < 64 && previous * (1 - (at - windowFloor) / length) > room + UNIT_EPSILON; i++) at = nextUp(at);
  return at;
}

/**
 * Milliseconds from now until `cost` more units fit, 0 if they fit now. When `reserving`,
 * also writes the `current` count that committing the request leaves into `commit[0]`.
 */
function waitFor(
  cells: Float64Array,
  base: number,
  p: ResolvedParams,
  nowMs: number,
  reserving: boolean,
  commit: Float64Array,
): number {
  const start = cells[base + START]!;
  const current = cells[base + CURRENT]!;
  const previous = cells[base + PREVIOUS]!;
  const limit = p.limit;
  const fraction = Math.min(1, Math.max(0, (nowMs - start) / windowLengthOf(p, start)));
  const room = limit - current - p.cost;
  commit[0] = current + p.cost;
  if (room >= 0) {
    if (previous * (1 - fraction) <= room + UNIT_EPSILON) return 0;
    // Later in this window, once the previous window's weight has decayed enough; when
    // the request fills the window (room 0) that is only at its end: it runs in the next
    // window, so it is counted there, or the next window would run more than L.
    if (reserving && room <= 0) commit[0] = Math.max(current, limit) + p.cost;
    return decayedEnough(p, start, 0, previous, room) - nowMs;
  }
  if (reserving) {
    // Queue behind everything already queued, in the first window with room. The carry
    // representation needs every earlier window full, so the current one is padded to L:
    // conservative, and later callers queue behind this reservation anyway.
    const target = Math.max(1, targetWindow(current, p.cost, limit));
    const padded = Math.max(current, target * limit);
    commit[0] = padded + p.cost;
    const queuedThere = padded - target * limit + p.cost;
    // Filling its window (behind a padded previous one) it fits only as that window ends: it
    // runs in the next one, and is counted there (as above).
    if (queuedThere >= limit) commit[0] = Math.max(current, (target + 1) * limit) + p.cost;
    return decayedEnough(p, start, target, limit, limit - queuedThere) - nowMs;
  }
  // First window j >= 1 whose own queued units leave room; its previous window's units
  // decay through it, so the request fits once their remaining weight is small enough.
  const target = Math.max(1, Math.ceil((current + p.cost - limit) / limit));
  const queuedThere = Math.max(0, current - target * limit);
  const previousThere = Math.min(limit, Math.max(0, current - (target - 1) * limit));
  return decayedEnough(p, start, target, previousThere, limit - queuedThere - p.cost) - nowMs;
}

const commitScratch = new Float64Array(1);

export const slidingWindow: AlgorithmImpl = {
  timeCells: [START, FRESH_AT],
  init(cells, base, p, nowMs) {
    cells[base + START] = windowStartOf(p, nowMs);
    cells[base + CURRENT] = 0;
    cells[base + PREVIOUS] = 0;
    cells[base + FRESH_AT] = nowMs;
  },

  step(cells, base, p, nowMs, maxWaitMs, out: StepOut) {
    advanceTo(cells, base, p, windowStartOf(p, nowMs));
    const wait = waitFor(cells, base, p, nowMs, maxWaitMs >= 0, commitScratch);
    const waitMs = wait > 0 ? delayFrom(nowMs, wait) : 0;
    out.waitMs = 0;
    out.retryAfterMs = 0;
    if (waitMs <= 0) {
      out.allowed = true;
      cells[base + CURRENT] = commitScratch[0]!;
    } else if (waitMs <= maxWaitMs) {
      out.allowed = true;
      out.waitMs = waitMs;
      cells[base + CURRENT] = commitScratch[0]!;
    } else {
      out.allowed = false;
      // When a plain request would fit: sooner than a reservation, which queues behind padding.
      out.retryAfterMs = maxWaitMs >= 0 ? delayFrom(nowMs, waitFor(cells, base, p, nowMs, false, commitScratch)) : waitMs;
    }
    const start = cells[base + START]!;
    const current = cells[base + CURRENT]!;
    const previous = cells[base + PREVIOUS]!;
    const fraction = Math.min(1, Math.max(0, (nowMs - start) / windowLengthOf(p, start)));
    const estimate = previous * (1 - fraction) + current;
    const remaining = Math.floor(p.limit - estimate + UNIT_EPSILON);
    out.remaining = remaining > 0 ? remaining : 0;
    // The estimate reaches 0 one window after the last queued unit's window ends.
    const windowsBusy = current > 0 ? Math.ceil(current / p.limit) + 1 : previous > 0 ? 1 : 0;
    const freshAt = windowsBusy === 0 ? nowMs : windowsAfterOf(p, start, windowsBusy);
    out.resetAtMs = freshAt;
    cells[base + FRESH_AT] = freshAt;
  },

  setRemaining(cells, base, p, nowMs, remaining) {
    const start = windowStartOf(p, nowMs);
    const current = p.limit - remaining;
    cells[base + START] = start;
    cells[base + CURRENT] = current;
    cells[base + PREVIOUS] = 0;
    // The estimate reaches 0 one window after the current one ends (as in step()).
    cells[base + FRESH_AT] = current > 0 ? windowsAfterOf(p, start, 2) : nowMs;
  },

  merge(a, aBase, b, bBase, p, nowMs) {
    const t = Math.max(a[aBase + START]!, b[bBase + START]!, windowStartOf(p, nowMs));
    advanceTo(a, aBase, p, t);
    advanceTo(b, bBase, p, t);
    a[aBase + CURRENT] = Math.max(a[aBase + CURRENT]!, b[bBase + CURRENT]!);
    a[aBase + PREVIOUS] = Math.max(a[aBase + PREVIOUS]!, b[bBase + PREVIOUS]!);
    a[aBase + FRESH_AT] = Math.max(a[aBase + FRESH_AT]!, b[bBase + FRESH_AT]!);
  },

  rebase(cells, base, deltaMs) {
    cells[base + START] = cells[base + START]! + deltaMs;
    cells[base + FRESH_AT] = cells[base + FRESH_AT]! + deltaMs;
  },
};
