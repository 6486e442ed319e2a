import type { PolicySyncStats } from '../sync/policy-sync.js';
import type { FairShareStats } from '../sync/fair-share-sync.js';
import type { ForwardServerStats } from '../routing/forward-server.js';
import type { ForwarderStats } from '../routing/forwarder.js';
import type { HandoffStats } from '../state/handoff.js';
import type { HotKeysStats } from '../sync/hot-keys.js';
import { EMPTY_LEASES_STATS, type LeasesStats } from '../lease/leases.js';
import type { ReplicatorStats } from '../state/replicator.js';
import type { PeerTransportStats } from '../transport/grpc-peer-transport.js';

/** The counters of a member's cluster machinery (zeros on a lone node: EMPTY_CLUSTER_STATS). */
export interface ClusterStats extends ForwardServerStats {
  /** Peer frames dropped as malformed. */
  malformedFrames: number;
  /** Peer streams refused (no valid proof of the cluster key, or not a member) and frames dropped on them. */
  peerAuth: PeerTransportStats;
  /** The policy document in force (version, digest; version 0 and no exchanges on a lone node). */
  policies: PolicySyncStats;
  /** Weighted fair share across the cluster: demand reports and allocations exchanged with the coordinators. */
  fairShare: FairShareStats;
  /** Decisions answered by the onUnavailable policy. */
  unavailable: number;
  forwarder: ForwarderStats;
  replication: ReplicatorStats;
  handoff: HandoffStats;
  /** Hot-key mode (`global: true`). */
  hotKeys: HotKeysStats;
  /** Leases (src/node/lease): slices held here, and slices granted by this node. */
  leases: LeasesStats;
  /** The split rule (split-share.ts): this side's share now, and what it did. */
  split: { share: number; splits: number; missing: number; refusedUnknown: number };
}

export const EMPTY_CLUSTER_STATS: Readonly<ClusterStats> = {
  received: 0,
  relayed: 0,
  decidedAsFallback: 0,
  marksReleased: 0,
  malformedFrames: 0,
  peerAuth: { refusedStreams: 0, unauthenticatedFrames: 0 },
  policies: { version: 0, digest: '', adopted: 0, pushed: 0, pulls: 0, refused: 0 },
  fairShare: { reportsSent: 0, reportsReceived: 0, allocationsSent: 0, allocationsReceived: 0, refused: 0 },
  unavailable: 0,
  forwarder: { forwarded: 0, frames: 0, failovers: 0, timeouts: 0, exhausted: 0 },
  replication: { entriesSent: 0, framesSent: 0, acks: 0, entriesReceived: 0, entriesRefused: 0, resyncEntriesSent: 0 },
  handoff: { pulls: 0, routedToNamed: 0, pullsAnswered: 0, pullTimeouts: 0, pushedEntries: 0, receivedEntries: 0, refusedEntries: 0, drainFramesAcked: 0, announcements: 0, pushedWaitingStates: 0, relayedEntries: 0, keptBySender: 0, movedDuringPull: 0, peersPending: 0 },
  hotKeys: { answeredFromCopy: 0, hitsSent: 0, hitsApplied: 0, statesSent: 0, statesReceived: 0, refusedStates: 0, overflow: 0 },
  split: { share: 1, splits: 0, missing: 0, refusedUnknown: 0 },
  leases: EMPTY_LEASES_STATS,
};
