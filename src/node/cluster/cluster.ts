import type * as grpc from '@grpc/grpc-js';
import type { Member, Membership, SwimMembership } from '../../gossip/index.js';
import type { LimiterStore } from '../../limiter/store.js';
import type { SwimStats } from '../../gossip/stats.js';
import { META_POLICY, PolicySync, policyVersionOf, type PolicyVersion } from '../sync/policy-sync.js';
import type { NodeRole } from './role.js';
import type { ClusterStats } from './cluster-stats.js';
import { FairShareSync } from '../sync/fair-share-sync.js';
import { fairShareDefaults } from '../../limiter/fair-share.js';
import type { Policies } from '../../limiter/policies.js';
import { ClusterView, META_GRPC, META_HANDED, META_HTTP, META_PROTOCOL, META_STATE, gossipMembers } from '../routing/cluster-view.js';
import { ForwardServer } from '../routing/forward-server.js';
import { Forwarder } from '../routing/forwarder.js';
import { FrameIds } from '../wire/frame-ids.js';
import { Handoff } from '../state/handoff.js';
import { HotKeyMarks } from '../sync/hot-key-marks.js';
import { HotKeys } from '../sync/hot-keys.js';
import type { ClusterInit } from './cluster-init.js';
import { OwnerDecision } from '../routing/owner-decision.js';
import { PeerDispatch } from './peer-dispatch.js';
import { Replicator } from '../state/replicator.js';
import type { PeerTransportStats } from '../transport/grpc-peer-transport.js';
import type { PeerTransport } from '../transport/peer-transport.js';
import { PEER_PROTOCOL_VERSION } from '../wire/frames.js';
import { ClusterRouter } from '../routing/router.js';
import type { LatencyHistogram } from '../../common/latency.js';
import { startPeers } from './peers.js';
import { joinSeeds } from './join.js';
import { Greetings } from './greetings.js';
import { SplitShare } from './split-share.js';
import { Leases } from '../lease/leases.js';

/** Internal bounds of the cluster machinery (the user-facing tunables are in ClusterInit). */
const clusterLimits = {
  /** Keys a handoff tracks at once (pulls, settled keys, handed-away marks). */
  maxTrackedKeys: 100_000,
  /** Frames awaiting an ack at once (sync replication, drain pushes). */
  maxAwaitedAcks: 100_000,
  /** Slots walked per event-loop turn after a ring change. */
  walkSlotsPerTurn: 20_000,
  /** A hot key's copy unused for this long is dropped. */
  hotCopyIdleMs: 60_000,
  /** How long a draining node keeps answering after handing its keys over. */
  drainLingerMs: 500,
  /** Users a node reports per action and interval to a shared capacity's coordinator (one frame). */
  maxFairShareReportUsers: 10_000,
  /** The longest a joining node waits for every member to answer its greeting (its streams open) before it turns active. */
  greetTimeoutMs: 2_000,
  /** Members the split rule remembers at most. */
  maxKnownMembers: 4_096,
} as const;

export interface ClusterComponents {
  store: LimiterStore;
  /** The node's gRPC server (serving its public API already): the peer protocol is mounted on it. */
  server: grpc.Server;
  grpcAddress: string;
  /** The node's HTTP API, when it serves one (members tell each other: ringlimit status reads them). */
  httpAddress: string | undefined;
  onMembership(event: 'join' | 'leave' | 'fail' | 'update', member: Member): void;
  onOwnership(owners: string[]): void;
  /** The policies this node starts with (version 0), and how a version from the cluster is put in force. */
  policies: Policies | undefined;
  applyPolicies(policies: Policies | undefined): void;
  warn(message: string): void;
  /** The members this node's last snapshot saw (a restart): out of reach until seen again (split-share.ts). */
  lastSeenMembers?: readonly string[];
  /** Runs the member's paths for `budgetMs` before it turns active (src/node/warm-up.ts). */
  warmUp(budgetMs: number): Promise<unknown>;
}

/** The parts of a member's cluster machinery, wired by Cluster.start. */
interface ClusterParts {
  membership: Membership;
  swim: SwimMembership | undefined;
  transport: PeerTransport;
  peerStats: PeerTransportStats;
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
  greetings: Greetings;
  split: SplitShare;
  leases: Leases;
}

/**
 * A node's cluster machinery: membership and the peer transport on the node's gRPC
 * server, the view, and the protocols (forwarding, replication, handoff, hot keys,
 * policies, fair share) with the one owner-side decision they share, behind one router.
 * start() wires and joins; drain() and close() leave.
 */
export class Cluster implements NodeRole {
  /** "Decide here, answer from a hot copy, or forward" for this member (see Router). */
  readonly router: ClusterRouter;
  /** Membership events seen, by kind. */
  private readonly events: Record<string, number> = { join: 0, leave: 0, fail: 0, update: 0 };
  private closed = false;

  private constructor(
    private readonly parts: ClusterParts,
    private readonly init: ClusterInit,
    private readonly components: ClusterComponents,
  ) {
    this.router = new ClusterRouter({ view: parts.view, decision: parts.decision, forwarder: parts.forwarder, hotCopies: parts.hotKeys, leases: parts.leases.slices });
    parts.decision.routeMovedKeysBy(this.router);
  }

  get membership(): Membership {
    return this.parts.membership;
  }

  get view(): ClusterView {
    return this.parts.view;
  }

  /** The owner-side decision every path shares (the node's request path and stats use it). */
  get decision(): OwnerDecision {
    return this.parts.decision;
  }

  members(): Member[] {
    return this.parts.membership.members();
  }

  owners(): string[] {
    return this.parts.view.ownerIds();
  }

  /** The members the split rule counts as the cluster (present or out of reach): what a snapshot records. */
  knownMembers(): string[] {
    return this.parts.split.knownMembers();
  }

  ownerOf(action: string, key: string): string {
    return this.parts.view.ownerOf(action, key);
  }

  ownerAddresses(): { nodeId: string; address: string }[] {
    return this.parts.view.clientOwners();
  }

  get gossipAddress(): string {
    return this.parts.membership.self.address;
  }

  membershipEvents(): Record<string, number> {
    return this.events;
  }

  /** Replication lag, one measure per flush. */
  replicationLag(): LatencyHistogram {
    return this.parts.replicator.lag;
  }

  /** A new policy document, with a version past every one seen: it reaches every member (see PolicySync). */
  changePolicies(policies: Policies | undefined): PolicyVersion {
    return this.parts.policySync.change(policies);
  }

  get policies(): PolicyVersion {
    return this.parts.policySync.current;
  }

  /** The counters of every part, copied. */
  stats(): ClusterStats {
    const p = this.parts;
    return {
      ...p.forwardServer.stats,
      malformedFrames: p.dispatch.stats.malformedFrames,
      peerAuth: { ...p.peerStats },
      policies: p.policySync.stats,
      fairShare: { ...p.fairShare.stats },
      unavailable: p.forwarder.stats.exhausted,
      forwarder: { ...p.forwarder.stats },
      replication: { ...p.replicator.stats },
      handoff: { ...p.handoff.stats, movedDuringPull: p.decision.movedDuringPull },
      hotKeys: p.hotKeys.stats(),
      split: { share: p.split.value, ...p.split.stats, refusedUnknown: p.decision.refusedUnknown },
      leases: p.leases.stats(),
    };
  }

  /** Ready for traffic: active, and an owner on its own ring. */
  readiness(): { ready: boolean; reason: string } {
    const state = this.membership.self.meta[META_STATE];
    if (state !== 'active') return { ready: false, reason: `state ${state ?? 'unknown'}` };
    if (!this.view.ownerIds().includes(this.init.nodeId)) return { ready: false, reason: 'not on the ring yet' };
    return { ready: true, reason: 'active, owning keys' };
  }

  /** The members and owners as this node sees them (HTTP /v1/cluster, ringlimit status). */
  info(): { members: object[]; owners: string[]; ownershipShares: Record<string, number> } {
    return {
      members: this.membership.members().map((m) => ({ nodeId: m.nodeId, gossip: m.address, grpc: m.meta[META_GRPC] ?? '', http: m.meta[META_HTTP] ?? '', state: m.meta[META_STATE] ?? '', liveness: m.state })),
      owners: this.view.ownerIds(),
      ownershipShares: Object.fromEntries(this.view.ownershipShares()),
    };
  }

  static async start(components: ClusterComponents, init: ClusterInit): Promise<Cluster> {
    const o = init;
    const { store } = components;
    const initialPolicies = policyVersionOf(components.policies, components.policies?.version ?? 0);
    const meta: Record<string, string> = { [META_GRPC]: components.grpcAddress, [META_STATE]: 'joining', [META_PROTOCOL]: String(PEER_PROTOCOL_VERSION), [META_POLICY]: `0.${initialPolicies.digest}` };
    if (components.httpAddress !== undefined) meta[META_HTTP] = components.httpAddress;
    const { membership, swim, transport, stats: peerStats, keyWarning } = await startPeers(components.server, components.grpcAddress, meta, o);
    let cluster: Cluster | undefined;
    try {
      const clock = o.clock;
      const ids = new FrameIds(clusterLimits.maxAwaitedAcks);
      const view = new ClusterView({ members: gossipMembers(membership), clock }, { selfId: o.nodeId, replicas: o.replicas, maxHandedAwayKeys: clusterLimits.maxTrackedKeys, handoffWindowMs: o.handoffWindowMs });
      const protocol = { store, view, transport, clock, ids };
      const replicator = new Replicator(protocol, {
        selfId: o.nodeId,
        replicas: o.replicas,
        replicationDelayMs: o.replicationDelayMs,
        replicationMaxDelayMs: o.replicationMaxDelayMs,
        replicationMinBatch: o.replicationMinBatch,
        maxBatchSize: o.maxBatchSize,
        ackTimeoutMs: o.forwardTimeoutMs,
        resyncSlotsPerTurn: clusterLimits.walkSlotsPerTurn,
      });
      const announce = (version: string): void => membership.updateMeta({ ...membership.self.meta, [META_HANDED]: version });
      const handoff = new Handoff({ ...protocol, replication: replicator, announce }, {
        selfId: o.nodeId,
        handoffWindowMs: o.handoffWindowMs,
        pullTimeoutMs: o.pullTimeoutMs,
        maxTrackedKeys: clusterLimits.maxTrackedKeys,
        maxBatchSize: o.maxBatchSize,
      });
      const hotKeyMarks = new HotKeyMarks(o.maxGlobalKeys);
      const split = new SplitShare({ clock, view }, { selfId: o.nodeId, splitShareMs: o.splitShareMs, maxKnownMembers: clusterLimits.maxKnownMembers });
      if (components.lastSeenMembers !== undefined) split.remember(components.lastSeenMembers.filter((nodeId) => nodeId !== o.nodeId));
      const decision = new OwnerDecision({ store, puller: handoff.pulls, replication: replicator, hotKeyMarks, split }, { syncReplication: o.replication === 'sync' });
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
      const greetings = new Greetings({ view, transport, now: () => clock.now() });
      const leases = new Leases({ view, transport, clock, store, decision, replication: replicator, split }, o.leases);
      const dispatch = new PeerDispatch({ ids, forwarder, forwardServer, replicator, handoff, hotKeys, leases, policySync, fairShare, greetings });
      transport.onFrame((frame, reply, from) => dispatch.onFrame(frame, reply, from));
      transport.onPeerDown((address) => forwarder.peerDown(address));
      view.onHandoffNews(() => {
        handoff.pulls.handoffNews();
        split.handoffNews();
      });
      view.onChange(() => {
        replicator.resyncOwned();
        handoff.pushMoved();
        hotKeys.ownersChanged();
        leases.ownersChanged();
        components.onOwnership(view.ownerIds());
      });
      for (const event of ['join', 'leave', 'fail', 'update'] as const) {
        membership.on(event, (member: Member) => {
          const address = member.meta[META_GRPC];
          if ((event === 'leave' || event === 'fail') && address !== undefined) transport.disconnect(address);
          if (event === 'leave') split.left(member.nodeId);
          view.refresh();
          split.observe(membership.members());
          if (event === 'join' || event === 'update') policySync.check();
          if (cluster !== undefined) cluster.events[event] = (cluster.events[event] ?? 0) + 1;
          components.onMembership(event, member);
        });
      }
      cluster = new Cluster({ membership, swim, transport, peerStats, view, decision, forwarder, forwardServer, replicator, handoff, hotKeys, dispatch, policySync, fairShare, greetings, split, leases }, init, components);
      await cluster.join();
      // After createNode() resolves, so that a listener added right after it hears the warning.
      if (keyWarning !== undefined) setImmediate(() => components.warn(keyWarning));
      return cluster;
    } catch (error) {
      if (cluster !== undefined) {
        await cluster.close(false);
      } else {
        await swim?.stop({ graceful: false }).catch(() => undefined);
        await transport.close();
      }
      throw error;
    }
  }

  /** The gossip layer's counters (undefined with an injected membership). */
  gossipStats(): SwimStats | undefined {
    return this.parts.swim?.stats();
  }

  private async join(): Promise<void> {
    const { membership, swim, view } = this.parts;
    await membership.start();
    // Owning keys takes a share of the cluster's traffic at once: be fast before that (while joining: it yields every few ms).
    const warm = this.components.warmUp(this.init.warmUpMs).catch((error: unknown) => {
      this.components.warn(`the warm-up failed (${error instanceof Error ? error.message : String(error)}): this member turns active without it`);
    });
    if (swim !== undefined && this.init.join.length > 0) await joinSeeds(swim, this.init, { warn: this.components.warn, closed: () => this.closed });
    // Only now, with a complete view (so "previous owner" means the owner before us), take keys —
    // warm, and with the streams to and from every member open.
    view.refresh();
    await Promise.all([warm, this.parts.greetings.greetAll(clusterLimits.greetTimeoutMs)]);
    view.refresh();
    membership.updateMeta({ ...membership.self.meta, [META_STATE]: 'active' });
    view.refresh();
    this.parts.split.observe(membership.members());
  }

  /**
   * Graceful leave, before `deadlineMs` (wall clock): turn draining so peers stop routing
   * here, flush replication, push every key to its new owner (paced, as after any ring
   * change) and wait for the acks, then keep answering for a moment while clients move.
   */
  async drain(deadlineMs: number): Promise<void> {
    const left = (): number => Math.max(0, deadlineMs - Date.now());
    try {
      this.membership.updateMeta({ ...this.membership.self.meta, [META_STATE]: 'draining' });
      // Our own view drops us from the ring too, so the push finds the new owners.
      this.view.refresh();
      await this.parts.replicator.flushAndWait();
      // The ring change started the push of every key held here (paced by its acks; keys not
      // sent yet are still decided here): wait for it, and push everything at once if it failed.
      if (!(await this.parts.handoff.awaitMovedPush(left()))) await this.parts.handoff.pushAll(left());
      const pushedAt = Date.now();
      await sleep(Math.min(left(), Math.max(0, clusterLimits.drainLingerMs - (Date.now() - pushedAt))));
    } catch {
      // best effort: a failed handoff leaves the replicas to cover
    }
  }

  async close(graceful: boolean): Promise<void> {
    this.closed = true;
    this.parts.policySync.close();
    this.parts.fairShare.close();
    this.parts.replicator.close();
    this.parts.handoff.close();
    this.parts.hotKeys.close();
    this.parts.leases.close(graceful);
    this.parts.split.close();
    this.parts.forwarder.close();
    await this.membership.stop({ graceful }).catch(() => undefined);
    await this.parts.transport.close();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
