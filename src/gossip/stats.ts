/** Counters exposed by `SwimMembership.stats()`. Drops are keyed by reason. */
export interface SwimStats {
  packetsReceived: number;
  packetsSent: number;
  bytesReceived: number;
  bytesSent: number;
  /** Packets dropped before reaching protocol logic (malformed, unauthenticated, oversize...). */
  packetsDropped: number;
  dropReasons: Record<string, number>;
  probes: number;
  probesFailed: number;
  indirectProbes: number;
  nacksSent: number;
  /** Acks and nacks that arrived after their probe was already judged. */
  lateReplies: number;
  suspicionsRaised: number;
  refutations: number;
  membersRejectedFull: number;
  broadcastsEvicted: number;
  syncRequestsSent: number;
  syncRepliesSent: number;
  syncRepliesThrottled: number;
  /** Push-pulls opened with a digest, and those whose digests matched (no full exchange). */
  syncDigestsSent: number;
  syncDigestsMatched: number;
  awarenessScore: number;
  lateTimers: number;
}

export function emptyStats(): SwimStats {
  return {
    packetsReceived: 0,
    packetsSent: 0,
    bytesReceived: 0,
    bytesSent: 0,
    packetsDropped: 0,
    dropReasons: {},
    probes: 0,
    probesFailed: 0,
    indirectProbes: 0,
    nacksSent: 0,
    lateReplies: 0,
    suspicionsRaised: 0,
    refutations: 0,
    membersRejectedFull: 0,
    broadcastsEvicted: 0,
    syncRequestsSent: 0,
    syncRepliesSent: 0,
    syncRepliesThrottled: 0,
    syncDigestsSent: 0,
    syncDigestsMatched: 0,
    awarenessScore: 0,
    lateTimers: 0,
  };
}

export function countDrop(stats: SwimStats, reason: string): void {
  stats.packetsDropped++;
  stats.dropReasons[reason] = (stats.dropReasons[reason] ?? 0) + 1;
}
