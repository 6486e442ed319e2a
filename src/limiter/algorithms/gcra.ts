import type { ResolvedParams } from '../types.js';
import { FRESH_AT, UNIT_EPSILON, delayFrom, type AlgorithmImpl, type StepOut } from './step.js';

/**
 * GCRA, the leaky bucket as a meter. One request every T = windowMs / L; a burst of up to
 * C = burst × weight (default L) is tolerated. In any interval of length t it allows at
 * most C + t / T units: the same bound as the token bucket, from a single timestamp.
 *
 * Cells: [tatWholeMs, tatFractionMs, intervalMs]. The theoretical arrival time (TAT) is
 * split into a whole-millisecond part and a fraction because at epoch-sized times a
 * double resolves only ~0.2 µs: adding a tiny emission interval (high rates) to one
 * double would round away and admit without limit.
 */
const WHOLE = 0;
const FRACTION = 1;
/**
 * The emission interval of the request that last wrote the state (0: not known, a state from
 * an older version). How far the TAT lies ahead of now is the units consumed × that interval;
 * a request with another rate re-scales it, so the units consumed are kept (as
 * rate-limiter-flexible keeps consumed points when the points change): a lower rate with the
 * same burst would otherwise read a used-up key as nearly full (issue 28).
 */
const INTERVAL = 2;

/**
 * Allowance for rounding, in milliseconds: at very high rates (intervals of nanoseconds)
 * each step's rounding of the TAT fraction is a visible share of one interval and would
 * make the last unit of a burst miss; at long windows the magnitudes themselves round.
 * It is at most a thousandth of an interval (and at most ~1 ns), and it never
 * accumulates: every admitted unit still advances the TAT by a whole interval.
 */
function slackMs(interval: number, tolerance: number): number {
  return Math.min(interval * 1e-3, 1e-6 + tolerance * 1e-15);
}

/** TAT - now, computed without losing the small difference to the large magnitudes. */
function tatMinusNow(cells: Float64Array, base: number, nowMs: number): number {
  const nowWhole = Math.floor(nowMs);
  return cells[base + WHOLE]! - nowWhole + (cells[base + FRACTION]! - (nowMs - nowWhole));
}

function setTat(cells: Float64Array, base: number, whole: number, fraction: number): void {
  const carry = Math.floor(fraction);
  cells[base + WHOLE] = whole + carry;
  cells[base + FRACTION] = fraction - carry;
}

function tatOf(cells: Float64Array, base: number): number {
  return cells[base + WHOLE]! + cells[base + FRACTION]!;
}

function initGcra(cells: Float64Array, base: number, p: ResolvedParams, nowMs: number): void {
  setTat(cells, base, Math.floor(nowMs), nowMs - Math.floor(nowMs));
  cells[base + INTERVAL] = p.windowMs / p.limit;
  cells[base + FRESH_AT] = nowMs;
}

/** Re-states the units consumed at `interval`: the TAT's lead over now scaled by interval / the stored one. */
function rescale(cells: Float64Array, base: number, interval: number, nowMs: number): void {
  const stored = cells[base + INTERVAL]!;
  cells[base + INTERVAL] = interval;
  if (!(stored > 0) || stored === interval) return;
  const ahead = tatMinusNow(cells, base, nowMs);
  if (ahead <= 0) return;
  const whole = Math.floor(nowMs);
  setTat(cells, base, whole, nowMs - whole + ahead * (interval / stored));
}

export const gcra: AlgorithmImpl = {
  timeCells: [WHOLE, FRESH_AT],
  init: initGcra,

  step(cells, base, p, nowMs, maxWaitMs, out: StepOut) {
    const interval = p.windowMs / p.limit;
    const tolerance = p.capacity * interval;
    rescale(cells, base, interval, nowMs);
    if (tatMinusNow(cells, base, nowMs) < 0) initGcra(cells, base, p, nowMs);
    // allowAt - now for this request: when the TAT after it is within the tolerance.
    const ahead = tatMinusNow(cells, base, nowMs) + p.cost * interval;
    const waitMs = ahead - tolerance > slackMs(interval, tolerance) ? delayFrom(nowMs, ahead - tolerance) : 0;
    out.waitMs = 0;
    out.retryAfterMs = 0;
    let commit = false;
    if (waitMs === 0) {
      commit = true;
    } else if (waitMs <= maxWaitMs) {
      commit = true;
      out.waitMs = waitMs;
    } else {
      out.retryAfterMs = waitMs;
    }
    out.allowed = commit;
    if (commit) setTat(cells, base, cells[base + WHOLE]!, cells[base + FRACTION]! + p.cost * interval);
    const behind = Math.max(0, tatMinusNow(cells, base, nowMs));
    const remaining = Math.floor((tolerance - behind) / interval + UNIT_EPSILON);
    out.remaining = remaining > 0 ? remaining : 0;
    const fullAt = nowMs + behind;
    out.resetAtMs = fullAt;
    cells[base + FRESH_AT] = fullAt;
  },

  setRemaining(cells, base, p, nowMs, remaining) {
    // The TAT `remaining` intervals short of the tolerance, kept as whole + fraction like every TAT.
    const interval = p.windowMs / p.limit;
    const whole = Math.floor(nowMs);
    setTat(cells, base, whole, nowMs - whole + (p.capacity - remaining) * interval);
    cells[base + INTERVAL] = interval;
    cells[base + FRESH_AT] = tatOf(cells, base);
  },

  merge(a, aBase, b, bBase, p, nowMs) {
    const interval = p.windowMs / p.limit;
    rescale(a, aBase, interval, nowMs);
    rescale(b, bBase, interval, nowMs);
    const aWhole = a[aBase + WHOLE]!;
    const bWhole = b[bBase + WHOLE]!;
    const bLater = bWhole > aWhole || (bWhole === aWhole && b[bBase + FRACTION]! > a[aBase + FRACTION]!);
    if (bLater) {
      a[aBase + WHOLE] = bWhole;
      a[aBase + FRACTION] = b[bBase + FRACTION]!;
    }
    a[aBase + FRESH_AT] = tatOf(a, aBase);
  },

  rebase(cells, base, deltaMs) {
    const whole = Math.trunc(deltaMs);
    setTat(cells, base, cells[base + WHOLE]! + whole, cells[base + FRACTION]! + (deltaMs - whole));
    cells[base + FRESH_AT] = cells[base + FRESH_AT]! + deltaMs;
  },
};
