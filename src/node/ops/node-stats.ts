import type { StoreStats } from '../../limiter/store.js';
import { emptyCallerStats, type CallerStats } from '../api/caller-ledger.js';
import type { PolicySyncStats } from '../sync/policy-sync.js';
import type { FairShareStats } from '../sync/fair-share-sync.js';
import type { Cluster } from '../cluster/cluster.js';
import type { ForwardServerStats } from '../routing/forward-server.js';
import type { ForwarderStats } from '../routing/forwarder.js';
import type { HandoffStats } from '../state/handoff.js';
import type { HotKeysStats } from '../sync/hot-keys.js';
import type { ReplicatorStats } from '../state/replicator.js';
import type { SnapshotStats } from '../state/snapshotter.js';

export interface NodeStats extends ForwardServerStats {
  store: StoreStats;
  /** Decisions made here for keys this node owns (or decided as a fallback). */
  decidedHere: number;
  /** Peer frames dropped as malformed. */
  malformedFrames: number;
  /** Peer streams refused (no valid proof of the cluster key, or not a member) and frames dropped on them. */
  peerAuth: { refusedStreams: number; unauthenticatedFrames: number };
  /** What callers of the gRPC port hold now (calls, requests in flight, unsent answer bytes) and what was refused them. */
  callers: CallerStats;
  /** The policy document in force (version, digest; version 0 and no exchanges on a lone node). */
  policies: PolicySyncStats;
  /** Adaptive limits: the factor every limit is scaled by now (1: none). */
  loadFactor: number;
  /** Weighted fair share across the cluster: demand reports and allocations exchanged with the coordinators. */
  fairShare: FairShareStats;
  /** Decisions answered by the onUnavailable policy. */
  unavailable: number;
  forwarder: ForwarderStats;
  replication: ReplicatorStats;
  handoff: HandoffStats;
  /** Hot-key mode (`global: true`). */
  hotKeys: HotKeysStats;
  /** Distance between callers' timestamps (public API timestamp_ms) and this node's clock. */
  callerSkew: { samples: number; maxAbsMs: number; meanAbsMs: number };
  /** Snapshots (with dataDir): written and failed since start, keys loaded at start, where a bad one was set aside ('' if not). */
  snapshot: SnapshotStats & { loadedKeys: number; setAsideTo: string };
}

/** Distance between callers' clocks and this node's: a statistic, never an input to a decision. */
export class CallerSkew {
  private samples = 0;
  private sumAbsMs = 0;
  private maxAbsMs = 0;

  record(callerMs: number, nowMs: number): void {
    const skew = Math.abs(nowMs - callerMs);
    this.samples++;
    this.sumAbsMs += skew;
    if (skew > this.maxAbsMs) this.maxAbsMs = skew;
  }

  stats(): NodeStats['callerSkew'] {
    return { samples: this.samples, maxAbsMs: this.maxAbsMs, meanAbsMs: this.samples === 0 ? 0 : this.sumAbsMs / this.samples };
  }
}

/** A copy of every counter: the node's own, and its cluster components' (zeros for a single node). */
export function nodeStats(store: StoreStats, decidedHere: number, skew: CallerSkew, c: Cluster | undefined, snapshot: NodeStats['snapshot'], loadFactor: number): NodeStats {
  return {
    snapshot,
    store,
    decidedHere,
    ...(c?.forwardServer.stats ?? { received: 0, relayed: 0, decidedAsFallback: 0 }),
    malformedFrames: c?.dispatch.stats.malformedFrames ?? 0,
    peerAuth: { ...(c?.peerStats ?? { refusedStreams: 0, unauthenticatedFrames: 0 }) },
    callers: { ...(c?.callerStats ?? emptyCallerStats()) },
    loadFactor,
    policies: c?.policySync.stats ?? { version: 0, digest: '', adopted: 0, pushed: 0, pulls: 0, refused: 0 },
    fairShare: { ...(c?.fairShare.stats ?? { reportsSent: 0, reportsReceived: 0, allocationsSent: 0, allocationsReceived: 0, refused: 0 }) },
    unavailable: c?.forwarder.stats.exhausted ?? 0,
    callerSkew: skew.stats(),
    forwarder: { ...(c?.forwarder.stats ?? { forwarded: 0, frames: 0, failovers: 0, timeouts: 0, exhausted: 0 }) },
    replication: { ...(c?.replicator.stats ?? { entriesSent: 0, framesSent: 0, acks: 0, entriesReceived: 0, entriesRefused: 0, resyncEntriesSent: 0 }) },
    hotKeys: c?.hotKeys.snapshot() ?? { answeredFromCopy: 0, hitsSent: 0, hitsApplied: 0, statesSent: 0, statesReceived: 0, refusedStates: 0, overflow: 0 },
    handoff: { ...(c?.handoff.stats ?? { pulls: 0, pullsAnswered: 0, pullTimeouts: 0, pushedEntries: 0, receivedEntries: 0, refusedEntries: 0, drainFramesAcked: 0 }) },
  };
}
