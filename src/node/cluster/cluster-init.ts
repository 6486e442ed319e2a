import type { Clock } from '../../common/clock.js';
import type { Membership, PacketTransport } from '../../gossip/index.js';
import type { LeaseOptions } from '../lease/lease-options.js';
import type { UnavailablePolicy } from '../routing/forwarder.js';
import type { NodeTls } from '../transport/credentials.js';
import type { PeerTransport } from '../transport/peer-transport.js';

/**
 * The tunables of a member's cluster machinery (Cluster.start): the node's options have them
 * all (NodeOptions, where each is documented and given its default).
 */
export interface ClusterInit {
  nodeId: string;
  host: string;
  gossipPort: number;
  join: string[];
  joinTimeoutMs: number | undefined;
  replicas: number;
  replication: 'async' | 'sync';
  replicationDelayMs: number;
  replicationMaxDelayMs: number;
  replicationMinBatch: number;
  maxBatchSize: number;
  forwardTimeoutMs: number;
  batchWaitMs: number;
  maxFramesInFlight: number;
  eagerBatchSize: number;
  maxPendingForwards: number;
  onUnavailable: UnavailablePolicy;
  handoffWindowMs: number;
  warmUpMs: number;
  splitShareMs: number;
  pullTimeoutMs: number;
  globalSyncMs: number;
  maxGlobalKeys: number;
  leases: LeaseOptions;
  maxBufferedBytesPerPeer: number;
  clock: Clock;
  membership: Membership | undefined;
  gossipPreset: 'lan' | 'test';
  clusterName: string;
  gossipKeys: string[];
  localClusterKey: boolean;
  insecureNoClusterKey: boolean;
  tls: NodeTls | undefined;
  wrapPeerTransport: ((transport: PeerTransport) => PeerTransport) | undefined;
  wrapGossipTransport: ((transport: PacketTransport) => PacketTransport) | undefined;
}
