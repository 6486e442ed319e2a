import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { RateLimitError, RingLimitError, invalidArgument } from '../common/errors.js';
import { Keyring, createSwimMembership, type Member, type Membership, type SwimMembership } from '../gossip/index.js';
import { limitFromRate, type AcquireOptions } from '../limiter/limiter.js';
import { LimiterStore, type StoreStats } from '../limiter/store.js';
import type { Decision, RateLimitRequest, Reservation, ResolvedParams } from '../limiter/types.js';
import { newResolvedParams, resolveRequest } from '../limiter/validate.js';
import { WaitQueue } from '../limiter/waiters.js';
import { addPublicApi } from './api/public-service.js';
import { ClusterView, META_GRPC, META_PROTOCOL, META_STATE, routingKey } from './cluster-view.js';
import { policyDecision } from './decisions.js';
import { Forwarder, type ForwarderStats, type PendingForward } from './forwarder.js';
import { Handoff, type HandoffStats } from './handoff.js';
import { resolveNodeOptions, type NodeOptions, type NodeOptionsInput } from './options.js';
import { Replicator, type ReplicatorStats } from './replicator.js';
import { loadSnapshot, writeSnapshot } from './snapshot.js';
import { GrpcPeerTransport } from './transport/grpc-peer-transport.js';
import type { PeerTransport } from './transport/peer-transport.js';
import { PEER_PROTOCOL_VERSION } from './wire/frames.js';
import { PeerServer } from './peer-server.js';

const NO_WAIT = -1;

export interface NodeStats {
  store: StoreStats;
  /** Decisions made here for keys this node owns (or decided as a fallback). */
  decidedHere: number;
  /** Forwards received from peers. */
  received: number;
  /** Peer frames dropped as malformed. */
  malformedFrames: number;
  /** Forwards decided here although another node owns the key (it had been relayed once already). */
  decidedAsFallback: number;
  /** Forwards passed on to the owner in this node's view (one hop at most). */
  relayed: number;
  /** Decisions answered by the onUnavailable policy. */
  unavailable: number;
  forwarder: ForwarderStats;
  replication: ReplicatorStats;
  handoff: HandoffStats;
  /** Distance between callers' timestamps (public API timestamp_ms) and this node's clock. */
  callerSkew: { samples: number; maxAbsMs: number; meanAbsMs: number };
}

interface NodeEvents {
  /** Membership changed: a member joined, left, failed or updated. */
  membership: [event: 'join' | 'leave' | 'fail' | 'update', member: Member];
  /** The ring was rebuilt: key ownership changed. */
  ownership: [owners: string[]];
}

interface Cluster {
  membership: Membership;
  swim: SwimMembership | undefined;
  view: ClusterView;
  server: grpc.Server;
  transport: PeerTransport;
  forwarder: Forwarder;
  replicator: Replicator;
  handoff: Handoff;
  grpcAddress: string;
}

/**
 * A ringlimit node: the limiter core for the keys it owns, plus (in cluster mode) SWIM
 * membership, the ring, batched forwarding to owners, replication and handoff.
 * Create with createNode().
 */
export class RingLimitNode extends EventEmitter<NodeEvents> {
  readonly options: Readonly<NodeOptions>;
  readonly store: LimiterStore;
  private cluster: Cluster | undefined;
  private readonly params = newResolvedParams();
  private readonly waiters: WaitQueue<Reservation>;
  private readonly sweeper: NodeJS.Timeout;
  private readonly counters = { decidedHere: 0, decidedAsFallback: 0, relayed: 0, received: 0, malformedFrames: 0, unavailable: 0 };
  private stopping: Promise<void> | undefined;

  private constructor(options: NodeOptions) {
    super();
    this.options = options;
    this.store = new LimiterStore(options.clock, options.store);
    this.waiters = new WaitQueue(options.clock, 10_000);
    this.sweeper = setInterval(() => this.store.sweep(10_000), 100);
    this.sweeper.unref();
  }

  static async create(input: NodeOptionsInput = {}): Promise<RingLimitNode> {
    const node = new RingLimitNode(resolveNodeOptions(input));
    try {
      await node.start();
    } catch (error) {
      await node.stop({ graceful: false }).catch(() => undefined);
      throw error;
    }
    return node;
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  /** host:port of the gRPC server (peer traffic and the public API); undefined for a single embedded node. */
  get grpcAddress(): string | undefined {
    return this.cluster?.grpcAddress;
  }

  /** host:port of the gossip socket, for other nodes' `join`. */
  get gossipAddress(): string | undefined {
    return this.cluster?.membership.self.address;
  }

  /** Live members, including this node. */
  members(): Member[] {
    return this.cluster?.membership.members() ?? [];
  }

  /** Node ids currently owning keys, in ring order of ids. */
  owners(): string[] {
    return this.cluster?.view.ring.members.map((m) => m.nodeId) ?? [this.nodeId];
  }

  /** Which node owns (action, key) right now. */
  ownerOf(key: string, action = 'default'): string {
    return this.cluster?.view.ring.owner(routingKey(action, key)) ?? this.nodeId;
  }

  // ---- the API ------------------------------------------------------------------------

  allow(request: RateLimitRequest): Promise<Decision> {
    return this.route(request, NO_WAIT);
  }

  /**
   * The synchronous fast path: the decision now when this node owns the key (or runs
   * alone), or undefined when it must be forwarded or fetched — then await allow().
   * Throws RateLimitError for bad input, like the core.
   */
  allowNow(request: RateLimitRequest): Decision | undefined {
    const p = resolveRequest(request, this.params);
    const cluster = this.cluster;
    if (cluster !== undefined) {
      const ring = cluster.view.ring;
      const owner = cluster.handoff.newOwnerOf(p.action, p.key) ?? ring.nodeIdAt(ring.ownerIndex(routingKey(p.action, p.key)));
      if (owner !== undefined && owner !== this.nodeId) return undefined;
      if (this.options.replication === 'sync' || cluster.handoff.mayPull()) return undefined;
    }
    this.counters.decidedHere++;
    return this.store.decideResolved(p, NO_WAIT);
  }

  reserve(request: RateLimitRequest, options: { maxWaitMs: number }): Promise<Reservation> {
    const maxWaitMs = options?.maxWaitMs;
    if (typeof maxWaitMs !== 'number' || !(maxWaitMs >= 0 && maxWaitMs <= 86_400_000)) {
      return Promise.reject(invalidArgument('maxWaitMs', `must be a number from 0 to 86400000 (24 h), got ${String(maxWaitMs)}`));
    }
    return this.route(request, maxWaitMs);
  }

  /** Waits for a slot (reserved at the key's owner), or resolves at once with allowed: false. */
  async acquire(request: RateLimitRequest, options: AcquireOptions = {}): Promise<Reservation> {
    const reservation = await this.reserve(request, { maxWaitMs: options.maxWaitMs ?? 10_000 });
    if (!reservation.allowed || reservation.waitMs <= 0) return reservation;
    if (!this.waiters.hasRoom()) throw new RateLimitError('RESOURCE_EXHAUSTED', 'acquire: too many callers waiting');
    return this.waiters.wait(this.options.clock.now() + reservation.waitMs, reservation, options.signal);
  }

  async rateLimit(userId: string, action: string, limit: number, windowSeconds: number): Promise<boolean> {
    return (await this.allow({ key: userId, action, limit, windowMs: windowSeconds * 1000 })).allowed;
  }

  async allowRequest(userId: string, endpoint: string, rateLimit: number, timeWindowSeconds: number): Promise<boolean> {
    return (await this.allow({ key: userId, action: endpoint, limit: rateLimit, windowMs: timeWindowSeconds * 1000 })).allowed;
  }

  async allowRate(userId: string, action: string, ratePerSecond: number, windowSeconds: number, weight = 1): Promise<boolean> {
    const limit = limitFromRate(ratePerSecond, windowSeconds);
    return (await this.allow({ key: userId, action, limit, windowMs: windowSeconds * 1000, weight })).allowed;
  }

  /**
   * A request's caller-side timestamp never changes a decision (the owner's clock alone
   * decides), but its distance from this node's clock is kept as a skew statistic.
   */
  recordCallerTime(timestampMs: number): void {
    const skew = Math.abs(this.options.clock.now() - timestampMs);
    const s = this.skew;
    s.samples++;
    s.sumAbsMs += skew;
    if (skew > s.maxAbsMs) s.maxAbsMs = skew;
  }

  private readonly skew = { samples: 0, sumAbsMs: 0, maxAbsMs: 0 };

  stats(): NodeStats {
    const c = this.cluster;
    return {
      store: this.store.stats(),
      ...this.counters,
      callerSkew: { samples: this.skew.samples, maxAbsMs: this.skew.maxAbsMs, meanAbsMs: this.skew.samples === 0 ? 0 : this.skew.sumAbsMs / this.skew.samples },
      forwarder: c?.forwarder.stats ?? { forwarded: 0, frames: 0, failovers: 0, timeouts: 0, exhausted: 0 },
      replication: c?.replicator.stats ?? { entriesSent: 0, framesSent: 0, acks: 0 },
      handoff: c?.handoff.stats ?? { pulls: 0, pullsAnswered: 0, pullTimeouts: 0, pushedEntries: 0, receivedEntries: 0 },
    };
  }

  // ---- routing ------------------------------------------------------------------------

  private route(request: RateLimitRequest, maxWaitMs: number): Promise<Reservation> {
    const p = this.params;
    try {
      resolveRequest(request, p);
    } catch (error) {
      return Promise.reject(error);
    }
    const cluster = this.cluster;
    if (cluster === undefined || (this.stopping !== undefined && cluster.view.ring.size === 0)) return this.decideResolved(p, maxWaitMs);
    const ring = cluster.view.ring;
    const id = routingKey(p.action, p.key);
    const movedTo = cluster.handoff.newOwnerOf(p.action, p.key);
    const owner = movedTo ?? ring.nodeIdAt(ring.ownerIndex(id));
    if (owner === undefined || owner === this.nodeId) {
      const pull = cluster.handoff.pullIfNeeded(p.action, p.key);
      if (pull === undefined) return this.decideResolved(p, maxWaitMs);
      return pull.then(() => this.decideHere(request, maxWaitMs));
    }
    const candidates = ring.owners(id, this.options.replicas + 1);
    if (movedTo !== undefined) candidates.unshift(movedTo);
    return cluster.forwarder.forward(request, p, maxWaitMs, candidates);
  }

  /** Decides the request whose resolved params are in `p` (validated already). */
  private decideResolved(p: ResolvedParams, maxWaitMs: number): Promise<Reservation> {
    this.counters.decidedHere++;
    let decision: Reservation;
    try {
      decision = this.store.decideResolved(p, maxWaitMs);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.options.replication === 'sync' && decision.allowed && this.cluster !== undefined) {
      return this.cluster.replicator.flushNow().then(() => decision);
    }
    return Promise.resolve(decision);
  }

  private decideHere(request: RateLimitRequest, maxWaitMs: number): Promise<Reservation> {
    try {
      resolveRequest(request, this.params);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.decideResolved(this.params, maxWaitMs);
  }

  private decideSync(request: RateLimitRequest, maxWaitMs: number): Reservation {
    this.counters.decidedHere++;
    return this.store.decideResolved(resolveRequest(request, this.params), maxWaitMs);
  }

  // ---- lifecycle ----------------------------------------------------------------------

  private async start(): Promise<void> {
    const o = this.options;
    if (o.dataDir !== undefined) await loadSnapshot(o.dataDir, o.nodeId, this.store, o.clock.now());
    if (!o.cluster) return;
    const server = new grpc.Server({ 'grpc.max_receive_message_length': 32 * 1024 * 1024 });
    const grpcTransport = new GrpcPeerTransport(server, { nodeId: o.nodeId, maxBufferedBytes: o.maxBufferedBytesPerPeer, reconnectBackoffMs: 200 });
    const transport: PeerTransport = o.wrapPeerTransport === undefined ? grpcTransport : o.wrapPeerTransport(grpcTransport);
    addPublicApi(server, {
      nodeId: o.nodeId,
      allow: (request) => this.route(request, NO_WAIT),
      reserve: (request, options) => this.reserve(request, options),
      health: () => ({
        nodeId: o.nodeId,
        status: this.stopping === undefined ? 'active' : 'draining',
        owners: this.owners(),
        members: this.members().length,
      }),
      recordCallerTime: (timestampMs) => this.recordCallerTime(timestampMs),
    });
    const port = await bindServer(server, `${o.host}:${o.port}`);
    const grpcAddress = `${o.host}:${port}`;
    const meta = { [META_GRPC]: grpcAddress, [META_STATE]: 'joining', [META_PROTOCOL]: String(PEER_PROTOCOL_VERSION) };
    let swim: SwimMembership | undefined;
    let membership: Membership;
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
        ...(o.wrapGossipTransport === undefined ? {} : { wrapTransport: o.wrapGossipTransport }),
        ...(o.gossipKeys.length > 0 ? { keyring: new Keyring(o.gossipKeys) } : {}),
      });
      membership = swim;
    }
    const view = new ClusterView(o.nodeId, membership, o.clock);
    const handoff = new Handoff(this.store, view, transport, o.clock, {
      selfId: o.nodeId,
      handoffWindowMs: o.handoffWindowMs,
      pullTimeoutMs: o.pullTimeoutMs,
      maxTrackedKeys: 100_000,
    });
    const forwarder = new Forwarder(
      transport,
      o.clock,
      { selfId: o.nodeId, forwardTimeoutMs: o.forwardTimeoutMs, batchWaitMs: o.batchWaitMs, maxBatchSize: o.maxBatchSize, maxPendingForwards: o.maxPendingForwards },
      {
        addressOf: (nodeId) => view.addressOf(nodeId),
        decideHere: (pending) => this.decideHere(pending.request, pending.item.maxWaitMs).then(pending.resolve, pending.reject),
        exhausted: (pending) => this.whenUnavailable(pending),
      },
    );
    const replicator = new Replicator(this.store, view, transport, o.clock, {
      selfId: o.nodeId,
      replicas: o.replicas,
      replicationDelayMs: o.replicationDelayMs,
      maxBatchSize: o.maxBatchSize,
      ackTimeoutMs: o.forwardTimeoutMs,
    });
    const peers = new PeerServer({
      nodeId: o.nodeId,
      clock: o.clock,
      store: this.store,
      view,
      forwarder,
      replicator,
      handoff,
      syncReplication: o.replication === 'sync',
      counters: this.counters,
      decideSync: (request, maxWaitMs) => this.decideSync(request, maxWaitMs),
      decideAsync: (request, maxWaitMs) => this.decideHere(request, maxWaitMs),
    });
    transport.onFrame((frame, reply, from) => peers.onFrame(frame, reply, from));
    transport.onPeerDown((address) => forwarder.peerDown(address));
    view.onChange((v) => {
      replicator.resyncAll();
      this.emit('ownership', v.ring.members.map((m) => m.nodeId));
    });
    for (const event of ['join', 'leave', 'fail', 'update'] as const) {
      membership.on(event, (member: Member) => {
        if (event === 'leave' || event === 'fail') {
          const address = member.meta[META_GRPC];
          if (address !== undefined) transport.disconnect(address);
        }
        this.emit('membership', event, member);
      });
    }
    this.cluster = { membership, swim, view, server, transport, forwarder, replicator, handoff, grpcAddress };
    await membership.start();
    if (swim !== undefined && o.join.length > 0) {
      await swim.join(o.join);
      await settled(() => membership.members().length, JOIN_SETTLE_MS, JOIN_SETTLE_MAX_MS);
    }
    // Only now, with a complete view (so "previous owner" means the owner before us), take keys.
    view.refresh();
    membership.updateMeta({ ...meta, [META_STATE]: 'active' });
    view.refresh();
  }

  private whenUnavailable(pending: PendingForward): void {
    this.counters.unavailable++;
    const nowMs = this.options.clock.now();
    switch (this.options.onUnavailable) {
      case 'local':
        this.decideHere(pending.request, pending.item.maxWaitMs).then(pending.resolve, pending.reject);
        return;
      case 'allow':
        pending.resolve(policyDecision(true, this.params.limit, nowMs, 0));
        return;
      case 'deny':
        pending.resolve(policyDecision(false, this.params.limit, nowMs, this.options.forwardTimeoutMs));
        return;
    }
  }

  /**
   * Stops the node. Graceful (default): mark this node draining so others stop routing
   * to it, hand every key's state to its new owner, write the snapshot (with dataDir),
   * leave the gossip, and close — all within drainTimeoutMs.
   */
  stop(options: { graceful?: boolean } = {}): Promise<void> {
    this.stopping ??= this.shutdown(options.graceful ?? true);
    return this.stopping;
  }

  private async shutdown(graceful: boolean): Promise<void> {
    const o = this.options;
    const cluster = this.cluster;
    const deadline = Date.now() + o.drainTimeoutMs;
    if (graceful && cluster !== undefined) {
      try {
        cluster.membership.updateMeta({ ...cluster.membership.self.meta, [META_STATE]: 'draining' });
        // Our own view drops us from the ring too, so pushAll finds the new owners.
        cluster.view.refresh();
        await cluster.replicator.flushNow();
        cluster.handoff.pushAll(o.maxBatchSize);
        // Let the draining state spread (a few gossip rounds) and peers pull what they need,
        // before the server closes: within the drain bound.
        await sleep(Math.min(Math.max(0, deadline - Date.now()), DRAIN_LINGER_MS));
      } catch {
        // best effort: a failed handoff leaves the replicas to cover
      }
    }
    if (graceful && o.dataDir !== undefined) await writeSnapshot(o.dataDir, o.nodeId, this.store, o.clock.now());
    clearInterval(this.sweeper);
    this.waiters.close();
    if (cluster !== undefined) {
      cluster.replicator.close();
      cluster.handoff.close();
      cluster.forwarder.close();
      await cluster.membership.stop({ graceful }).catch(() => undefined);
      await cluster.transport.close();
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          cluster.server.forceShutdown();
          resolve();
        }, Math.max(0, Math.min(1000, deadline - Date.now())));
        cluster.server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    }
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** How long a draining node keeps answering after handing its keys over. */
const DRAIN_LINGER_MS = 500;

/** A full-state sync can span several datagrams: the view is complete once it stops growing for a while. */
const JOIN_SETTLE_MS = 150;
const JOIN_SETTLE_MAX_MS = 3_000;

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

function bindServer(server: grpc.Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, port) => {
      if (error !== null) {
        const inUse = /EADDRINUSE|address already in use/i.test(error.message);
        reject(new RingLimitError(inUse ? 'FAILED_PRECONDITION' : 'UNAVAILABLE', `gRPC server cannot bind ${address}: ${inUse ? 'the port is in use' : error.message}`));
      } else {
        resolve(port);
      }
    });
  });
}

/** Starts a node. With no options: a single embedded node, no sockets. */
export function createNode(options: NodeOptionsInput = {}): Promise<RingLimitNode> {
  return RingLimitNode.create(options);
}

