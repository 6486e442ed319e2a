import type { Member } from '../../gossip/index.js';
import type { SwimStats } from '../../gossip/stats.js';
import type { LatencyHistogram } from '../../common/latency.js';
import type { Policies } from '../../limiter/policies.js';
import type { Router } from '../routing/router.js';
import type { PolicyVersion } from '../sync/policy-sync.js';
import type { ClusterStats } from './cluster-stats.js';

/**
 * What a node is, for everything that differs between a lone node and a member of a
 * cluster: where its requests go, who owns what, how policies change, how it leaves.
 * LoneNode and Cluster are the two; the node asks its role and never branches on it.
 */
export interface NodeRole {
  readonly router: Router;
  /** Live members, this node included ([] alone). */
  members(): Member[];
  /** Node ids owning keys, in ring order of ids. */
  owners(): string[];
  /** Which node decides (action, key) now. */
  ownerOf(action: string, key: string): string;
  /** The owners with their gRPC addresses (the Members RPC). */
  ownerAddresses(): { nodeId: string; address: string }[];
  /** host:port of the gossip socket (undefined alone). */
  readonly gossipAddress: string | undefined;
  gossipStats(): SwimStats | undefined;
  replicationLag(): LatencyHistogram | undefined;
  /** Membership events seen, by kind (join, leave, fail, update). */
  membershipEvents(): Record<string, number>;
  readiness(): { ready: boolean; reason: string };
  /** Members, owners and shares as this node sees them. */
  info(): { members: object[]; owners: string[]; ownershipShares: Record<string, number> };
  /** The cluster machinery's counters (undefined alone: zeros). */
  stats(): ClusterStats | undefined;
  /** Puts policies in force (cluster-wide for a member); the version they got. */
  changePolicies(policies: Policies | undefined): PolicyVersion;
  /** The policy document in force. */
  readonly policies: PolicyVersion;
  /** Graceful leave, before `deadlineMs`: hands keys over (nothing alone). */
  drain(deadlineMs: number): Promise<void>;
  close(graceful: boolean): Promise<void>;
}
