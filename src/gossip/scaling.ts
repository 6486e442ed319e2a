/**
 * How SWIM's costs and waits scale with the member count: pure functions, so that the
 * protocol, the simulator (bench/gossip-scale.ts) and docs/gossip.md quote the same numbers
 * (memberlist keeps these in util.go).
 */

/**
 * Lifeguard suspicion timeout: starts at `maxMs` and falls logarithmically towards `minMs`
 * as up to `k` independent members confirm.
 */
export function suspicionTimeoutMs(confirmations: number, k: number, minMs: number, maxMs: number): number {
  if (k < 1) return minMs;
  const fraction = Math.log(Math.min(confirmations, k) + 1) / Math.log(k + 1);
  return Math.max(minMs, Math.floor(maxMs - fraction * (maxMs - minMs)));
}

/** Suspicion bounds for a cluster of `members` (including self): memberlist's log10 scaling. */
export function suspicionBoundsMs(members: number, minMs: number, maxMultiplier: number): { minMs: number; maxMs: number } {
  const scaled = Math.round(minMs * Math.max(1, Math.log10(Math.max(1, members))));
  return { minMs: scaled, maxMs: scaled * maxMultiplier };
}

/**
 * How many times each update is piggybacked: multiplier × ceil(log10(members + 1)), at
 * least once the multiplier. With fan-out f per gossip round, an update reaches all n
 * members in O(log n) rounds with high probability (the SWIM paper's dissemination).
 */
export function retransmitLimit(members: number, multiplier: number): number {
  return multiplier * Math.max(1, Math.ceil(Math.log10(Math.max(1, members) + 1)));
}

/** Members up to which push-pull runs at its base interval (memberlist's pushPullScaleThreshold). */
export const PUSH_PULL_SCALE_THRESHOLD = 32;

/**
 * The interval between full-state exchanges: the base interval up to 32 members, then one
 * more base interval per doubling (memberlist's pushPullScale), so that the bytes a member
 * sends for anti-entropy grow as n / log n rather than n.
 */
export function pushPullIntervalMs(baseMs: number, members: number): number {
  if (members <= PUSH_PULL_SCALE_THRESHOLD) return baseMs;
  const multiplier = Math.ceil(Math.log2(members) - Math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1;
  return baseMs * multiplier;
}
