import type { StoreStats } from '../../limiter/store.js';
import type { CallerStats } from '../api/caller-ledger.js';
import { EMPTY_CLUSTER_STATS, type ClusterStats } from '../cluster/cluster-stats.js';
import type { SnapshotPacingStats, SnapshotStats } from '../state/snapshotter.js';

export interface NodeStats extends ClusterStats {
  store: StoreStats;
  /** Decisions made here for keys this node owns (or decided as a fallback). */
  decidedHere: number;
  /** What callers of the gRPC port hold now (calls, requests in flight, unsent answer bytes) and what was refused them. */
  callers: CallerStats;
  /** Adaptive limits: the factor every limit is scaled by now (1: none). */
  loadFactor: number;
  /** Distance between callers' timestamps (public API timestamp_ms) and this node's clock. */
  callerSkew: { samples: number; maxAbsMs: number; meanAbsMs: number };
  /** Snapshots (with dataDir): written and failed since start, keys loaded at start, where a bad one was set aside ('' if not). */
  snapshot: SnapshotStats & SnapshotPacingStats & { loadedKeys: number; setAsideTo: string };
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

/** What a node's own counters are, beside its cluster's. */
export interface NodeCounters {
  store: StoreStats;
  decidedHere: number;
  callers: CallerStats;
  loadFactor: number;
  callerSkew: CallerSkew;
  snapshot: NodeStats['snapshot'];
}

/** A copy of every counter: the node's own, and its cluster's (`cluster`: its stats(), undefined on a single node: zeros). */
export function nodeStats(own: NodeCounters, cluster: ClusterStats | undefined): NodeStats {
  return {
    ...(cluster ?? EMPTY_CLUSTER_STATS),
    snapshot: own.snapshot,
    store: own.store,
    decidedHere: own.decidedHere,
    callers: { ...own.callers },
    loadFactor: own.loadFactor,
    callerSkew: own.callerSkew.stats(),
  };
}
