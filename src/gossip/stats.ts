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
  /** Members never confirmed by a direct probe ack, dropped to make room for a newcomer when the table was full. */
  membersEvictedUnproven: number;
  /** New members refused because their source, not a proven member, already taught us maxUnprovenMembersPerSource unproven ones (members or candidates). */
  membersRejectedSource: number;
  /** Live members proven by a direct ack to one of our probes. */
  membersProven: number;
  /** Without a cluster key: new members held apart until they answer a ping from their own address (candidates.ts), now. */
  candidates: number;
  /** Candidates that answered and became members. */
  candidatesConfirmed: number;
  /** New members refused because the candidates were full (what another told of; a self-introduction makes room). */
  candidatesRefused: number;
  /** Candidates dropped to make room for a self-introduction. */
  candidatesDisplaced: number;
  /** Candidates forgotten unconfirmed: their ping went unanswered, or candidateTtlMs passed. */
  candidatesExpired: number;
  /** Pings sent to candidates. */
  candidatePings: number;
  /** Updates dropped as implausible: a generation too far ahead, an incarnation jump past maxIncarnationJump. */
  implausibleGenerations: number;
  implausibleIncarnations: number;
  /** Times this node moved to a new generation because no incarnation could refute what was said of it. */
  generationRefutations: number;
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
    membersEvictedUnproven: 0,
    membersRejectedSource: 0,
    membersProven: 0,
    candidates: 0,
    candidatesConfirmed: 0,
    candidatesRefused: 0,
    candidatesDisplaced: 0,
    candidatesExpired: 0,
    candidatePings: 0,
    implausibleGenerations: 0,
    implausibleIncarnations: 0,
    generationRefutations: 0,
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
