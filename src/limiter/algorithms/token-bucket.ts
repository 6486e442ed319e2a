import type { ResolvedParams } from '../types.js';
import { FRESH_AT, UNIT_EPSILON, delayFrom, type AlgorithmImpl, type StepOut } from './step.js';

/**
 * Token bucket. Capacity C = burst × weight (default: the effective limit L); refills
 * L tokens per window, continuously. In any interval of length T it allows at most
 * C + L × T / windowMs units.
 *
 * Cells: [tokens, atMs, ratePerMs]. Tokens go negative only through reservations, which
 * is how queued reservations make later callers wait behind them. ratePerMs is the refill
 * rate (limit / windowMs) of the request that last wrote the state (0: not known, a state
 * from an older version).
 *
 * A request with another limit never refills the time already passed at its own rate: that
 * time refills at the slower of the stored rate and the request's (else one request with a
 * huge limit would refill the bucket for everyone; issue 28). A raised burst adds no tokens
 * at once: the bucket refills up to it.
 */
const TOKENS = 0;
const AT = 1;
const RATE = 2;

/** `rate`: p.limit / p.windowMs, computed once by the caller. */
function refill(cells: Float64Array, base: number, p: ResolvedParams, nowMs: number, rate: number): void {
  const at = cells[base + AT]!;
  let tokens = cells[base + TOKENS]!;
  if (nowMs > at) {
    const stored = cells[base + RATE]!;
    // The same expression as before for an unchanged rate, so a steady key rounds as it always did.
    tokens += stored > 0 && stored < rate ? (nowMs - at) * stored : ((nowMs - at) * p.limit) / p.windowMs;
    cells[base + AT] = nowMs;
  }
  // Also clamps a bucket whose capacity was lowered by a config change.
  cells[base + TOKENS] = tokens < p.capacity ? tokens : p.capacity;
}

export const tokenBucket: AlgorithmImpl = {
  timeCells: [AT, FRESH_AT],
  init(cells, base, p, nowMs) {
    cells[base + TOKENS] = p.capacity;
    cells[base + AT] = nowMs;
    cells[base + RATE] = p.limit / p.windowMs;
    cells[base + FRESH_AT] = nowMs;
  },

  step(cells, base, p, nowMs, maxWaitMs, out: StepOut) {
    const rate = p.limit / p.windowMs;
    refill(cells, base, p, nowMs, rate);
    let tokens = cells[base + TOKENS]!;
    const msPerToken = p.windowMs / p.limit;
    const deficit = p.cost - tokens;
    out.waitMs = 0;
    out.retryAfterMs = 0;
    if (deficit <= UNIT_EPSILON) {
      out.allowed = true;
      tokens -= p.cost;
    } else {
      const waitMs = delayFrom(nowMs, deficit * msPerToken);
      if (waitMs <= maxWaitMs) {
        out.allowed = true;
        out.waitMs = waitMs;
        tokens -= p.cost;
      } else {
        out.allowed = false;
        out.retryAfterMs = waitMs;
      }
    }
    cells[base + TOKENS] = tokens;
    cells[base + RATE] = rate;
    const at = cells[base + AT]!;
    const fullAt = at + (p.capacity - tokens) * msPerToken;
    out.remaining = tokens > 0 ? Math.floor(tokens + UNIT_EPSILON) : 0;
    out.resetAtMs = fullAt;
    cells[base + FRESH_AT] = fullAt;
  },

  setRemaining(cells, base, p, nowMs, remaining) {
    cells[base + TOKENS] = remaining;
    cells[base + AT] = nowMs;
    cells[base + RATE] = p.limit / p.windowMs;
    cells[base + FRESH_AT] = nowMs + (p.capacity - remaining) * (p.windowMs / p.limit);
  },

  merge(a, aBase, b, bBase, p, nowMs) {
    const t = Math.max(a[aBase + AT]!, b[bBase + AT]!, nowMs);
    const rate = p.limit / p.windowMs;
    refill(a, aBase, p, t, rate);
    refill(b, bBase, p, t, rate);
    a[aBase + TOKENS] = Math.min(a[aBase + TOKENS]!, b[bBase + TOKENS]!);
    a[aBase + RATE] = rate;
    a[aBase + FRESH_AT] = t + (p.capacity - a[aBase + TOKENS]!) * (p.windowMs / p.limit);
  },

  rebase(cells, base, deltaMs) {
    cells[base + AT] = cells[base + AT]! + deltaMs;
    cells[base + FRESH_AT] = cells[base + FRESH_AT]! + deltaMs;
  },
};
