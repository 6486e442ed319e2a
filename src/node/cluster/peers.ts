import type * as grpc from '@grpc/grpc-js';
import { isIP } from 'node:net';
import { Keyring, createSwimMembership, type Membership, type SwimMembership } from '../../gossip/index.js';
import type { ClusterInit } from './cluster-init.js';
import { clusterKeyPlan, clusterKeys } from './cluster-key.js';
import { META_GRPC } from '../routing/cluster-view.js';
import { GrpcPeerTransport, MAX_GRPC_MESSAGE_BYTES, type PeerTransportStats } from '../transport/grpc-peer-transport.js';
import { PeerAuth } from '../transport/peer-auth.js';
import { channelCredentials } from '../transport/credentials.js';
import type { PeerTransport } from '../transport/peer-transport.js';

/** How long a broken peer stream waits before dialling again. */
const RECONNECT_BACKOFF_MS = 200;

/** A member's way to its peers: gossip membership, and the peer protocol's transport on the node's gRPC server. */
export interface Peers {
  membership: Membership;
  /** undefined with an injected membership. */
  swim: SwimMembership | undefined;
  transport: PeerTransport;
  /** Peer streams refused and frames dropped for want of authentication. */
  stats: PeerTransportStats;
  /** Said on every start without a cluster key given (none at all, or one of its own). */
  keyWarning: string | undefined;
}

/**
 * Whether `nodeId` is a live member that advertises `ip` as its gRPC or gossip host (a
 * member that advertises a host name, not an address, is taken at its word: only the
 * cluster key tells it apart then).
 */
function isMemberAt(membership: Membership, nodeId: string, ip: string): boolean {
  for (const m of membership.members()) {
    if (m.nodeId !== nodeId) continue;
    const hosts = [hostOf(m.meta[META_GRPC] ?? m.address), hostOf(m.address)];
    return hosts.some((host) => host === ip || isIP(host) === 0);
  }
  return false;
}

function hostOf(address: string): string {
  return address.startsWith('[') ? address.slice(1, address.indexOf(']')) : address.slice(0, address.lastIndexOf(':'));
}

/**
 * Mounts the peer protocol on `server` (authenticated by the cluster key, else by
 * membership) and starts gossip with `meta`. The membership is started by Cluster.join().
 * The key is the one given, else as clusterKeyPlan decides (cluster-key.ts); `keyWarning` says
 * what a start without one given must warn of.
 */
export async function startPeers(server: grpc.Server, grpcAddress: string, meta: Record<string, string>, o: ClusterInit): Promise<Peers> {
  const { keys, warning: keyWarning } = clusterKeys(clusterKeyPlan({ ...o, cluster: true }), o.gossipKeys);
  const keyring = keys.length > 0 ? new Keyring(keys) : undefined;
  let membership: Membership | undefined;
  const auth = new PeerAuth({ keyring, isMember: (nodeId, ip) => membership !== undefined && isMemberAt(membership, nodeId, ip) }, { selfId: o.nodeId });
  auth.selfAddress = grpcAddress;
  const grpcTransport = new GrpcPeerTransport(
    server,
    { nodeId: o.nodeId, maxBufferedBytes: o.maxBufferedBytesPerPeer, reconnectBackoffMs: RECONNECT_BACKOFF_MS, credentials: channelCredentials(o.tls), maxMessageBytes: MAX_GRPC_MESSAGE_BYTES, clusterName: o.clusterName },
    auth,
  );
  const transport = o.wrapPeerTransport === undefined ? grpcTransport : o.wrapPeerTransport(grpcTransport);
  let swim: SwimMembership | undefined;
  try {
    if (o.membership !== undefined) {
      membership = o.membership;
      membership.updateMeta(meta);
    } else {
      swim = await createSwimMembership({
        nodeId: o.nodeId,
        host: o.host,
        port: o.gossipPort,
        meta,
        preset: o.gossipPreset,
        ...(o.joinTimeoutMs === undefined ? {} : { timings: { joinTimeoutMs: o.joinTimeoutMs } }),
        ...(o.clusterName === '' ? {} : { clusterName: o.clusterName }),
        ...(o.wrapGossipTransport === undefined ? {} : { wrapTransport: o.wrapGossipTransport }),
        ...(keyring !== undefined ? { keyring } : {}),
      });
      membership = swim;
    }
  } catch (error) {
    await transport.close();
    throw error;
  }
  return { membership, swim, transport, stats: grpcTransport.stats, keyWarning };
}
