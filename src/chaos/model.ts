/**
 * The reference model: what an exact single-node limiter would have decided, from the
 * client-side log of every decision. The harness uses a fixed window longer than any run,
 * so for each key the exact answer is "the first `limit` requests, then none".
 */

export interface LoggedDecision {
  sentAtMs: number;
  key: number;
  /** 1 allowed, 0 rejected, -1 error seen by the client. */
  outcome: number;
  latencyMs: number;
}

export interface PhaseTimes {
  /** Fault injected at (ms since epoch); Infinity for no fault. */
  faultAtMs: number;
  /** Fault over (healed, restarted, resumed) at. */
  faultEndMs: number;
}

export interface Accuracy {
  decisions: number;
  keys: number;
  overUnits: number;
  overPct: number;
  overByPhase: { before: number; during: number; after: number };
  /** Requests never admitted that an exact limiter would have: for each key below its limit at the end, min(rejected, limit − allowed). */
  underUnits: number;
  underPct: number;
  /**
   * Refusals at the moment they were made, by phase: a rejection counts if, in send order, the
   * key's allowed decisions plus the refusals already counted are below its limit (an exact
   * limiter, which would have admitted those refusals too, still had room). Unlike underUnits, a
   * refusal made up for later (the key still reaching its limit) counts, so a split that refuses
   * while it lasts and admits after the heal shows here, in `during`. Requests sent at nearly the
   * same moment and decided in the other order count too, near a key's limit.
   */
  underByPhase: { before: number; during: number; after: number };
  /** underByPhase.during in % of the limits of the keys used. */
  underDuringPct: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** p99 of the decisions sent after the first WARM_MS of load: fresh processes (cold JIT, new streams) left out. */
  p99WarmMs: number;
}

/** Load before this (from the first decision) counts as the processes warming up. */
export const WARM_MS = 2_000;

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export function evaluate(log: LoggedDecision[], limit: number, phases: PhaseTimes): Accuracy {
  const byKey = new Map<number, LoggedDecision[]>();
  for (const d of log) {
    let list = byKey.get(d.key);
    if (list === undefined) byKey.set(d.key, (list = []));
    list.push(d);
  }
  let overUnits = 0;
  let underUnits = 0;
  const overByPhase = { before: 0, during: 0, after: 0 };
  const underByPhase = { before: 0, during: 0, after: 0 };
  const phaseOf = (d: LoggedDecision) => (d.sentAtMs < phases.faultAtMs ? 'before' : d.sentAtMs < phases.faultEndMs ? 'during' : 'after');
  for (const list of byKey.values()) {
    list.sort((a, b) => a.sentAtMs - b.sentAtMs);
    let allowed = 0;
    let rejected = 0;
    let refusedWithRoom = 0;
    for (const d of list) {
      if (d.outcome === 1) {
        allowed++;
        if (allowed > limit) {
          overUnits++;
          overByPhase[phaseOf(d)]++;
        }
      } else if (d.outcome === 0) {
        rejected++;
        if (allowed + refusedWithRoom < limit) {
          refusedWithRoom++;
          underByPhase[phaseOf(d)]++;
        }
      }
    }
    // Rejected while the key still had capacity (it never reached its limit).
    if (allowed < limit) underUnits += Math.min(rejected, limit - allowed);
  }
  const latencies = log.filter((d) => d.outcome !== -1).map((d) => d.latencyMs).sort((a, b) => a - b);
  let firstMs = Infinity;
  for (const d of log) if (d.sentAtMs < firstMs) firstMs = d.sentAtMs;
  const warm = log.filter((d) => d.outcome !== -1 && d.sentAtMs >= firstMs + WARM_MS).map((d) => d.latencyMs).sort((a, b) => a - b);
  const capacity = limit * Math.max(1, byKey.size);
  return {
    decisions: log.length,
    keys: byKey.size,
    overUnits,
    overPct: (100 * overUnits) / capacity,
    overByPhase,
    underUnits,
    underPct: (100 * underUnits) / capacity,
    underByPhase,
    underDuringPct: (100 * underByPhase.during) / capacity,
    errors: log.filter((d) => d.outcome === -1).length,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    maxMs: latencies.length === 0 ? 0 : latencies[latencies.length - 1]!,
    p99WarmMs: percentile(warm, 0.99),
  };
}
