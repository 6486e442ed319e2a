import * as grpc from '@grpc/grpc-js';
import { isIP } from 'node:net';
import { RingLimitError } from '../../common/errors.js';
import { Keyring, createSwimMembership, type Member, type Membership, type SwimMembership } from '../../gossip/index.js';
import type { LimiterStore } from '../../limiter/store.js';
import type { PublicApiBackend } from '../api/backend.js';
import { addPublicApi } from '../api/public-service.js';
import type { SwimStats } from '../../gossip/stats.js';
import { META_POLICY, PolicySync, policyVersionOf } from '../sync/policy-sync.js';
import { FairShareSync } from '../sync/fair-share-sync.js';
import { fairShareDefaults } from '../../limiter/fair-share.js';
import type { Policies } from '../../limiter/policies.js';
import { CallerLedger, type CallerStats } from '../api/caller-ledger.js';
import { callerServerOptions } from '../api/caller-bounds.js';
import { ClusterView, META_GRPC, META_PROTOCOL, META_STATE, gossipMembers } from '../routing/cluster-view.js';
import { ForwardServer } from '../routing/forward-server.js';
import { Forwarder } from '../routing/forwarder.js';
import { FrameIds } from '../wire/frame-ids.js';
import { Handoff } from '../state/handoff.js';
import { HotKeyMarks } from '../sync/hot-key-marks.js';
import { HotKeys } from '../sync/hot-keys.js';
import type { NodeOptions } from '../options.js';
import { OwnerDecision } from '../routing/owner-decision.js';
import { PeerDispatch } from './peer-dispatch.js';
import { Replicator } from '../state/replicator.js';
import { GrpcPeerTransport, type PeerTransportStats } from '../transport/grpc-peer-transport.js';
import { PeerAuth } from '../transport/peer-auth.js';
import { ApiTokens, channelCredentials, serverCredentials } from '../transport/credentials.js';
import type { PeerTransport } from '../transport/peer-transport.js';
import { PEER_PROTOCOL_VERSION } from '../wire/frames.js';
import { ClusterRouter } from '../routing/router.js';
import { addEnvoyRateLimitService } from '../api/envoy-service.js';

/** Internal bounds of the cluster machinery (the user-facing tunables are in NodeOptions). */
const clusterLimits = {
  /** Keys a handoff tracks at once (pulls, settled keys, handed-away marks). */
  maxTrackedKeys: 100_000,
  /** Frames awaiting an ack at once (sync replication, drain pushes). */
  maxAwaitedAcks: 100_000,
  /** Slots walked per event-loop turn after a ring change. */
  walkSlotsPerTurn: 20_000,
  /** Largest gRPC message a peer may send. */
  maxReceiveMessageBytes: 32 * 1024 * 1024,
  reconnectBackoffMs: 200,
  /** A hot key's copy unused for this long is dropped. */
  hotCopyIdleMs: 60_000,
  /** How long a draining node keeps answering after handing its keys over. */
  drainLingerMs: 500,
  /** A full-state sync can span several datagrams: the view is complete once it stops growing for a while. */
  joinSettleMs: 150,
  joinSettleMaxMs: 3_000,
  /** Users a node reports per action and interval to a shared capacity's coordinator (one frame). */
  maxFairShareReportUsers: 10_000,
} as const;

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

export interface ClusterComponents {
  store: LimiterStore;
  /** What the public gRPC service calls. */
  api: PublicApiBackend;
  onMembership(event: 'join' | 'leave' | 'fail' | 'update', member: Member): void;
  onOwnership(owners: string[]): void;
  /** The policies this node starts with (version 0), and how a version from the cluster is put in force. */
  policies: Policies | undefined;
  applyPolicies(policies: Policies | undefined): void;
  warn(message: string): void;
}

/**
 * A node's cluster machinery, wired: gRPC server and peer transport, membership, the
 * view, and the protocols (forwarding, replication, handoff) with the one owner-side
 * decision they share. start() joins; drain() and close() leave.
 */
interface ClusterParts {
  membership: Membership;
  swim: SwimMembership | undefined;
  view: ClusterView;
  decision: OwnerDecision;
  forwarder: Forwarder;
  forwardServer: ForwardServer;
  replicator: Replicator;
  handoff: Handoff;
  hotKeys: HotKeys;
  dispatch: PeerDispatch;
  policySync: PolicySync;
  fairShare: FairShareSync;
  transport: PeerTransport;
  peerStats: PeerTransportStats;
  callerStats: CallerStats;
  server: grpc.Server;
  grpcAddress: string;
}

export class Cluster {
  readonly membership: Membership;
  readonly view: ClusterView;
  readonly decision: OwnerDecision;
  readonly forwarder: Forwarder;
  readonly forwardServer: ForwardServer;
  readonly replicator: Replicator;
  readonly handoff: Handoff;
  readonly hotKeys: HotKeys;
  readonly dispatch: PeerDispatch;
  /** One policy document cluster-wide (see PolicySync). */
  readonly policySync: PolicySync;
  /** Weighted fair share of shared capacities, cluster-wide (see FairShareSync). */
  readonly fairShare: FairShareSync;
  readonly grpcAddress: string;
  /** "Decide here, answer from a hot copy, or forward" for this member (see Router). */
  readonly router: ClusterRouter;
  /** Peer streams refused and frames dropped for want of authentication. */
  readonly peerStats: PeerTransportStats;
  /** What callers hold on the gRPC port, and what was refused them. */
  readonly callerStats: CallerStats;
  private readonly swim: SwimMembership | undefined;
  private readonly transport: PeerTransport;
  private readonly server: grpc.Server;

  private constructor(
    parts: ClusterParts,
    private readonly init: NodeOptions,
  ) {
    this.membership = parts.membership;
    this.view = parts.view;
    this.decision = parts.decision;
    this.forwarder = parts.forwarder;
    this.forwardServer = parts.forwardServer;
    this.replicator = parts.replicator;
    this.handoff = parts.handoff;
    this.hotKeys = parts.hotKeys;
    this.router = new ClusterRouter({ view: parts.view, decision: parts.decision, forwarder: parts.forwarder, hotCopies: parts.hotKeys });
    this.dispatch = parts.dispatch;
    this.policySync = parts.policySync;
    this.fairShare = parts.fairShare;
    this.grpcAddress = parts.grpcAddress;
    this.peerStats = parts.peerStats;
    this.callerStats = parts.callerStats;
    this.swim = parts.swim;
    this.transport = parts.transport;
    this.server = parts.server;
  }

  static async start(components: ClusterComponents, init: NodeOptions): Promise<Cluster> {
    const o = init;
    const { store } = components;
    const callers = new CallerLedger(o.callerLimits);
    const server = new grpc.Server({ 'grpc.max_receive_message_length': clusterLimits.maxReceiveMessageBytes, ...callerServerOptions(callers) });
    const keyring = o.gossipKeys.length > 0 ? new Keyring(o.gossipKeys) : undefined;
    let membership: Membership | undefined;
    const auth = new PeerAuth({ keyring, isMember: (nodeId, ip) => membership !== undefined && isMemberAt(membership, nodeId, ip) }, { selfId: o.nodeId });
    const grpcTransport = new GrpcPeerTransport(
      server,
      { nodeId: o.nodeId, maxBufferedBytes: o.maxBufferedBytesPerPeer, reconnectBackoffMs: clusterLimits.reconnectBackoffMs, credentials: channelCredentials(o.tls), maxMessageBytes: clusterLimits.maxReceiveMessageBytes, clusterName: o.clusterName },
      auth,
    );
    const transport = o.wrapPeerTransport === undefined ? grpcTransport : o.wrapPeerTransport(grpcTransport);
    addPublicApi(server, components.api, new ApiTokens(o.apiTokens), new ApiTokens(o.adminTokens), callers);
    addEnvoyRateLimitService(server, components.api, new ApiTokens(o.apiTokens));
    let swim: SwimMembership | undefined;
    let cluster: Cluster | undefined;
    try {
      const grpcAddress = `${o.host}:${await bindServer(server, `${o.host}:${o.port}`, serverCredentials(o.tls))}`;
      auth.selfAddress = grpcAddress;
      const initialPolicies = policyVersionOf(components.policies, components.policies?.version ?? 0);
      const meta = { [META_GRPC]: grpcAddress, [META_STATE]: 'joining', [META_PROTOCOL]: String(PEER_PROTOCOL_VERSION), [META_POLICY]: `0.${initialPolicies.digest}` };
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
          ...(o.clusterName === '' ? {} : { clusterName: o.clusterName }),
          ...(o.wrapGossipTransport === undefined ? {} : { wrapTransport: o.wrapGossipTransport }),
          ...(keyring !== undefined ? { keyring } : {}),
        });
        membership = swim;
      }
      const clock = o.clock;
      const ids = new FrameIds(clusterLimits.maxAwaitedAcks);
      const view = new ClusterView({ members: gossipMembers(membership), clock }, { selfId: o.nodeId, replicas: o.replicas, maxHandedAwayKeys: clusterLimits.maxTrackedKeys });
      const protocol = { store, view, transport, clock, ids };
      const replicator = new Replicator(protocol, {
        selfId: o.nodeId,
        replicas: o.replicas,
        replicationDelayMs: o.replicationDelayMs,
        maxBatchSize: o.maxBatchSize,
        ackTimeoutMs: o.forwardTimeoutMs,
        resyncSlotsPerTurn: clusterLimits.walkSlotsPerTurn,
      });
      const handoff = new Handoff({ ...protocol, replication: replicator }, {
        selfId: o.nodeId,
        handoffWindowMs: o.handoffWindowMs,
        pullTimeoutMs: o.pullTimeoutMs,
        maxTrackedKeys: clusterLimits.maxTrackedKeys,
        maxBatchSize: o.maxBatchSize,
        pushSlotsPerTurn: clusterLimits.walkSlotsPerTurn,
      });
      const hotKeyMarks = new HotKeyMarks(o.maxGlobalKeys);
      const decision = new OwnerDecision({ store, puller: handoff, replication: replicator, hotKeyMarks }, { syncReplication: o.replication === 'sync' });
      const hotKeys = new HotKeys(
        { store, view, transport, clock, decision, marks: hotKeyMarks },
        { selfId: o.nodeId, globalSyncMs: o.globalSyncMs, maxGlobalKeys: o.maxGlobalKeys, copyIdleMs: clusterLimits.hotCopyIdleMs, maxBatchSize: o.maxBatchSize },
      );
      const forwarder = new Forwarder(
        { transport, clock, view, decision },
        {
          selfId: o.nodeId,
          forwardTimeoutMs: o.forwardTimeoutMs,
          batchWaitMs: o.batchWaitMs,
          maxFramesInFlight: o.maxFramesInFlight,
          eagerBatchSize: o.eagerBatchSize,
          maxBatchSize: o.maxBatchSize,
          maxPendingForwards: o.maxPendingForwards,
          onUnavailable: o.onUnavailable,
        },
      );
      const forwardServer = new ForwardServer({ clock, view, decision, forwarder });
      const fairShare = new FairShareSync({ store, view, transport, clock }, { selfId: o.nodeId, intervalMs: fairShareDefaults.intervalMs, maxReportUsers: clusterLimits.maxFairShareReportUsers });
      const applyPolicies = (policies: Policies | undefined): void => {
        components.applyPolicies(policies);
        if (policies?.hasShared === true) fairShare.wake();
      };
      if (components.policies?.hasShared === true) fairShare.wake();
      const policySync = new PolicySync({ membership, transport, apply: applyPolicies, warn: components.warn, now: () => Date.now() }, initialPolicies);
      const dispatch = new PeerDispatch({ ids, forwarder, forwardServer, replicator, handoff, hotKeys, policySync, fairShare });
      transport.onFrame((frame, reply, from) => dispatch.onFrame(frame, reply, from));
      transport.onPeerDown((address) => forwarder.peerDown(address));
      view.onChange(() => {
        replicator.resyncOwned();
        handoff.pushMoved();
        hotKeys.ownersChanged();
        components.onOwnership(view.ownerIds());
      });
      for (const event of ['join', 'leave', 'fail', 'update'] as const) {
        membership.on(event, (member: Member) => {
          const address = member.meta[META_GRPC];
          if ((event === 'leave' || event === 'fail') && address !== undefined) transport.disconnect(address);
          view.refresh();
          if (event === 'join' || event === 'update') policySync.check();
          components.onMembership(event, member);
        });
      }
      cluster = new Cluster({ membership, swim, view, decision, forwarder, forwardServer, replicator, handoff, hotKeys, dispatch, policySync, fairShare, transport, peerStats: grpcTransport.stats, callerStats: callers.stats, server, grpcAddress }, init);
      await cluster.join();
      return cluster;
    } catch (error) {
      if (cluster !== undefined) {
        await cluster.close(false, Date.now());
      } else {
        await swim?.stop({ graceful: false }).catch(() => undefined);
        await transport.close();
        server.forceShutdown();
      }
      throw error;
    }
  }

  /** The gossip layer's counters (undefined with an injected membership). */
  gossipStats(): SwimStats | undefined {
    return this.swim?.stats();
  }

  private async join(): Promise<void> {
    const { membership, swim, view } = this;
    await membership.start();
    if (swim !== undefined && this.init.join.length > 0) {
      await swim.join(this.init.join);
      await settled(() => membership.members().length, clusterLimits.joinSettleMs, clusterLimits.joinSettleMaxMs);
    }
    // Only now, with a complete view (so "previous owner" means the owner before us), take keys.
    view.refresh();
    membership.updateMeta({ ...membership.self.meta, [META_STATE]: 'active' });
    view.refresh();
  }

  /**
   * Graceful leave, before `deadlineMs` (wall clock): turn draining so peers stop routing
   * here, flush replication, push every key to its new owner and wait for the acks, then
   * keep answering for a moment while the draining state spreads and peers pull.
   */
  async drain(deadlineMs: number): Promise<void> {
    const left = (): number => Math.max(0, deadlineMs - Date.now());
    try {
      this.membership.updateMeta({ ...this.membership.self.meta, [META_STATE]: 'draining' });
      // Our own view drops us from the ring too, so the push finds the new owners.
      this.view.refresh();
      await this.replicator.flushAndWait();
      const pushedAt = Date.now();
      await this.handoff.pushAll(left());
      await sleep(Math.min(left(), Math.max(0, clusterLimits.drainLingerMs - (Date.now() - pushedAt))));
    } catch {
      // best effort: a failed handoff leaves the replicas to cover
    }
  }

  async close(graceful: boolean, deadlineMs: number): Promise<void> {
    this.policySync.close();
    this.fairShare.close();
    this.replicator.close();
    this.handoff.close();
    this.hotKeys.close();
    this.forwarder.close();
    await this.membership.stop({ graceful }).catch(() => undefined);
    await this.transport.close();
    await new Promise<void>((resolve) => {
      const force = setTimeout(
        () => {
          this.server.forceShutdown();
          resolve();
        },
        Math.max(0, Math.min(1000, deadlineMs - Date.now())),
      );
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function settled(read: () => number, quietMs: number, maxMs: number): Promise<void> {
  const deadline = Date.now() + maxMs;
  let last = read();
  let quietSince = Date.now();
  while (Date.now() < deadline && Date.now() - quietSince < quietMs) {
    await sleep(20);
    const now = read();
    if (now !== last) {
      last = now;
      quietSince = Date.now();
    }
  }
}

function bindServer(server: grpc.Server, address: string, credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (error, port) => {
      if (error !== null) {
        const inUse = /EADDRINUSE|address already in use/i.test(error.message);
        reject(new RingLimitError(inUse ? 'FAILED_PRECONDITION' : 'UNAVAILABLE', `gRPC server cannot bind ${address}: ${inUse ? 'the port is in use' : error.message}`));
      } else {
        resolve(port);
      }
    });
  });
}
