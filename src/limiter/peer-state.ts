import { AlgorithmId, type ResolvedParams } from './types.js';
import { windowStartOf } from './algorithms/windows.js';

/**
 * What a key's state may plausibly be, for states that arrive from another node
 * (replication, handoff, pulls, hot-key broadcasts) or a snapshot. The wire bounds
 * (algorithms/index.ts wireStateBounds) know no limit; these do, so they run where the
 * limit is known: at the key's next decision, with the request's own parameters.
 *
 * Every bound is what the algorithm itself can write, with reservations queued up to
 * maxWaitMs: a state outside it was not written by a ringlimit node deciding this key,
 * and is clamped to the nearest plausible state (issue 28: a handed-off
 * bucket of −9 × 10^15 tokens locked a key out for ever; a negative count would admit
 * without limit).
 */
export const peerStateBounds = {
  /** The longest a reservation queues (reserve()'s maxWaitMs ceiling): how far into debt a key can go. */
  maxWaitMs: 86_400_000,
  /** How far past this node's now a re-based time may lie: the clocks' disagreement after re-basing. */
  clockSlackMs: 60_000,
} as const;

/** Whether four cells received without limits could be a state at all: no negative count, a TAT fraction within [0, 1). */
export function plausibleWithoutLimits(algorithm: AlgorithmId, cells: Float64Array, base: number): boolean {
  const c1 = cells[base + 1]!;
  const c2 = cells[base + 2]!;
  switch (algorithm) {
    case AlgorithmId.TokenBucket:
      return c2 >= 0;
    case AlgorithmId.Gcra:
      return c1 >= 0 && c1 < 1 && c2 >= 0;
    case AlgorithmId.SlidingWindow:
      return c1 >= 0 && c2 >= 0;
    case AlgorithmId.FixedWindow:
      return c1 >= 0;
    default:
      return false;
  }
}

/** The most units a window can carry: its own limit plus reservations queued maxWaitMs ahead (a period may be shorter than windowMs). */
function mostQueued(p: Readonly<ResolvedParams>): number {
  return p.limit * (3 + Math.ceil((2 * peerStateBounds.maxWaitMs) / p.windowMs));
}

/**
 * Clamps the state at `cells[base..]` of algorithm `p.algorithm` into what a node deciding
 * with `p` could have written by `nowMs`, never towards admitting more. Returns whether
 * anything was changed.
 */
export function clampPeerState(cells: Float64Array, base: number, p: Readonly<ResolvedParams>, nowMs: number): boolean {
  const latest = nowMs + peerStateBounds.clockSlackMs;
  let changed = false;
  switch (p.algorithm) {
    case AlgorithmId.TokenBucket: {
      // Reservations leave at most maxWaitMs of refill owed, behind a bucket that held at most its capacity.
      const lowest = -((p.limit / p.windowMs) * peerStateBounds.maxWaitMs + p.capacity);
      if (!(cells[base]! >= lowest)) {
        cells[base] = lowest;
        changed = true;
      }
      if (!(cells[base + 1]! <= latest)) {
        cells[base + 1] = latest;
        changed = true;
      }
      if (!(cells[base + 2]! >= 0)) {
        cells[base + 2] = 0;
        changed = true;
      }
      break;
    }
    case AlgorithmId.Gcra: {
      const interval = p.windowMs / p.limit;
      const stored = cells[base + 2]!;
      // The TAT's lead over now, in units consumed (as the algorithm re-scales it), is at most the bucket plus maxWaitMs of queue.
      const scale = stored > 0 ? interval / stored : 1;
      const mostAheadMs = (p.capacity * interval + peerStateBounds.maxWaitMs + peerStateBounds.clockSlackMs) / scale;
      const fraction = cells[base + 1]!;
      if (!(fraction >= 0 && fraction < 1)) {
        cells[base + 1] = 0;
        changed = true;
      }
      if (!(cells[base]! + cells[base + 1]! <= nowMs + mostAheadMs)) {
        const tat = nowMs + mostAheadMs;
        cells[base] = Math.floor(tat);
        cells[base + 1] = tat - Math.floor(tat);
        changed = true;
      }
      if (!(stored >= 0)) {
        cells[base + 2] = 0;
        changed = true;
      }
      break;
    }
    case AlgorithmId.SlidingWindow:
    case AlgorithmId.FixedWindow: {
      // A window starts at or before its writer's now; counts are never negative nor beyond the queue.
      if (!(cells[base]! <= latest)) {
        cells[base] = windowStartOf(p, latest);
        changed = true;
      }
      const most = mostQueued(p);
      const last = p.algorithm === AlgorithmId.SlidingWindow ? 2 : 1;
      for (let i = 1; i <= last; i++) {
        const v = cells[base + i]!;
        const bounded = v >= 0 ? (v <= most ? v : most) : 0;
        if (bounded !== v) {
          cells[base + i] = bounded;
          changed = true;
        }
      }
      break;
    }
  }
  return changed;
}
