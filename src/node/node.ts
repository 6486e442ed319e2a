import { EventEmitter } from 'node:events';
import { RingLimitError } from '../common/errors.js';
import { LatencyHistogram } from '../common/latency.js';
import type { EnvoyDescriptors } from '../envoy/descriptors.js';
import { EnvoyStats } from '../envoy/stats.js';
import type { Member } from '../gossip/index.js';
import { rateRequest, windowRequest } from '../limiter/aliases.js';
import { Limiter, type AcquireOptions } from '../limiter/limiter.js';
import { Policies, type PolicyDocument } from '../limiter/policies.js';
import type { PolicySpec } from '../limiter/policy-handle.js';
import type { LimiterStore } from '../limiter/store.js';
import type { Decision, RateLimitRequest, Reservation, ResolvedParams } from '../limiter/types.js';
import { nodeBackend } from './node-backend.js';
import type { AdminOptions, AdminRecord, NodeEvents } from './node-events.js';
import { NodePolicyHandle } from './node-policy-handle.js';
import { createNodeMetrics, type Registry } from './ops/metrics.js';
import { CallerSkew, nodeStats, type NodeStats } from './ops/node-stats.js';
import { loadPolicyText } from './sync/policy-loader.js';
import { resolveNodeOptions, type NodeOptions, type NodeOptionsInput } from './options.js';
import { OwnerDecision } from './routing/owner-decision.js';
import { RequestPath } from './routing/request-path.js';
import { startingRouter } from './routing/router.js';
import { LoneNode } from './cluster/lone-node.js';
import { NodeParts } from './node-parts.js';
import { operate } from './operators.js';

export type { AdminOptions, AdminRecord } from './node-events.js';

/**
 * A ringlimit node — the limiter core for the keys it owns, plus (in cluster mode) membership,
 * the ring, forwarding, replication and handoff — as its users see it: the public API, start
 * and stop. Requests go through its RequestPath to a Router; NodeParts composes the rest.
 */
export class RingLimitNode extends EventEmitter<NodeEvents> {
  readonly options: Readonly<NodeOptions>;
  readonly store: LimiterStore;
  /** envoyproxy/ratelimit's stats of the Envoy service: per limit key, config loads, shadowed answers (metrics: ringlimit_envoy_*). */
  readonly envoyStats = new EnvoyStats();
  /** The local core: store, idle-key sweeper and acquire()'s waiters. */
  private readonly limiter: Limiter;
  private decision: OwnerDecision;
  /** What start() makes and stop() closes: snapshots, servers, the role (lone node or member), load control. */
  private readonly parts: NodeParts;
  private readonly skew = new CallerSkew();
  /** Sampled decision latency: answered here, and answered by the owner it was forwarded to. */
  private readonly latency = { local: new LatencyHistogram(), forwarded: new LatencyHistogram() };
  /** Validation, latency sampling and the router: every request's way in. */
  private readonly path: RequestPath;
  private registry: Registry | undefined;
  private envoyConfigInForce: EnvoyDescriptors | undefined;
  private stopping: Promise<void> | undefined;

  private constructor(options: NodeOptions) {
    super();
    this.options = options;
    this.envoyConfig = options.envoyConfig;
    this.limiter = new Limiter({ ...options.store, clock: options.clock, policies: options.policies });
    this.store = this.limiter.store;
    this.decision = new OwnerDecision({ store: this.store }, { syncReplication: false });
    this.parts = new NodeParts(new LoneNode(options.nodeId, this.decision, this.store.policies, (policies) => this.applyPolicies(policies), options.cluster));
    // A member decides nothing, and is not ready, until its cluster is up (its APIs are served from the start).
    this.path = new RequestPath({ store: this.store, latency: this.latency }, options.cluster ? startingRouter : this.parts.role.router);
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
    return this.parts.servers?.grpcAddress;
  }

  /** host:port of the HTTP API (with `httpPort`), else undefined. */
  get httpAddress(): string | undefined {
    return this.parts.servers?.httpAddress;
  }

  /** host:port of the gossip socket, for other nodes' `join`. */
  get gossipAddress(): string | undefined {
    return this.parts.role.gossipAddress;
  }

  /** Live members, including this node. */
  members(): Member[] {
    return this.parts.role.members();
  }

  /** Node ids currently owning keys, in ring order of ids. */
  owners(): string[] {
    return this.parts.role.owners();
  }

  /** Which node decides (action, key) right now: the same answer routing uses. */
  ownerOf(key: string, action = 'default'): string {
    return this.parts.role.ownerOf(action, key);
  }

  // ---- the API ------------------------------------------------------------------------

  allow(request: RateLimitRequest): Promise<Decision> {
    return this.path.promise(request, undefined);
  }

  /**
   * The synchronous fast path: the decision now when this node decides the key and nothing
   * has to be waited for, or a hot key (`global: true`) from this node's copy; undefined when
   * it must be forwarded or fetched (then await allow()). Throws RateLimitError for bad input.
   */
  allowNow(request: RateLimitRequest): Decision | undefined {
    return this.path.now(request);
  }

  /** allowNow() for a request already validated (policy handles); `p` is read now, never kept. */
  allowNowResolved(p: ResolvedParams): Decision | undefined {
    return this.path.nowResolved(p);
  }

  /** allow() for a request already validated (policy handles). */
  allowResolved(p: ResolvedParams): Promise<Decision> {
    return this.path.promiseResolved(p);
  }

  reserve(request: RateLimitRequest, options: { maxWaitMs: number }): Promise<Reservation> {
    // A reservation names its bound: a missing one is refused (NaN fails validation), never taken as a plain allow.
    return this.path.promise(request, options?.maxWaitMs ?? Number.NaN);
  }

  /** Waits for a slot (reserved at the key's owner), or resolves at once with allowed: false. */
  async acquire(request: RateLimitRequest, options: AcquireOptions = {}): Promise<Reservation> {
    const reservation = await this.reserve(request, { maxWaitMs: options.maxWaitMs ?? this.limiter.options.defaultMaxWaitMs });
    return this.limiter.waitFor(reservation, options.signal);
  }

  async rateLimit(userId: string, action: string, limit: number, windowSeconds: number): Promise<boolean> {
    return (await this.allow(windowRequest(userId, action, limit, windowSeconds))).allowed;
  }

  async allowRequest(userId: string, endpoint: string, rateLimit: number, timeWindowSeconds: number): Promise<boolean> {
    return (await this.allow(windowRequest(userId, endpoint, rateLimit, timeWindowSeconds))).allowed;
  }

  async allowRate(userId: string, action: string, ratePerSecond: number, windowSeconds: number, weight = 1): Promise<boolean> {
    return (await this.allow(rateRequest(userId, action, ratePerSecond, windowSeconds, weight))).allowed;
  }

  /**
   * A precompiled policy on this node: options validated once, one request shape for every
   * call. allowNow(key) answers synchronously for keys decided here; allow(key) also
   * forwards to the key's owner.
   */
  policy(spec: PolicySpec): NodePolicyHandle {
    return new NodePolicyHandle(this, spec);
  }

  /** The Envoy rate limit configuration served on the gRPC port (docs/envoy.md); undefined stops serving it. */
  get envoyConfig(): EnvoyDescriptors | undefined {
    return this.envoyConfigInForce;
  }

  /** Takes a configuration in force (counted as a load: ringlimit_envoy_config_loads_total). */
  set envoyConfig(config: EnvoyDescriptors | undefined) {
    this.envoyConfigInForce = config;
    if (config !== undefined) this.envoyStats.configLoadSuccess++;
  }

  // ---- operators: inspect, reset, set (carried out by the key's owner, replicated) ----------

  /** A key's remaining and reset time at its owner, without consuming anything. */
  inspect(request: RateLimitRequest, options: AdminOptions = {}): Promise<Decision> {
    return this.admin('inspect', request, undefined, options);
  }

  /** Gives a key its full allowance back at its owner (replicated like every change). Returns the key as it is then. */
  reset(request: RateLimitRequest, options: AdminOptions = {}): Promise<Decision> {
    return this.admin('reset', request, undefined, options);
  }

  /** Puts a key's remaining to `remaining` (0 to its capacity) at its owner. Returns the key as it is then. */
  setRemaining(request: RateLimitRequest, remaining: number, options: AdminOptions = {}): Promise<Decision> {
    return this.admin('set', request, remaining, options);
  }

  private admin(op: AdminRecord['op'], request: RateLimitRequest, remaining: number | undefined, options: AdminOptions): Promise<Decision> {
    return operate(this.store, this.path.router, op, request, remaining, options.by ?? 'embedded', (record) => this.emit('admin', record));
  }

  /**
   * Replaces the policies (validated first: a bad document throws and changes nothing);
   * undefined removes them. In a cluster the change gets a version past every one seen and
   * reaches every node (docs/policies.md); returns that version (0 on a lone node).
   */
  setPolicies(policies: PolicyDocument | Policies | undefined): number {
    return this.parts.role.changePolicies(policies === undefined || policies instanceof Policies ? policies : new Policies(policies)).version;
  }

  /** Policies from here or from the cluster: in force on this node now. */
  private applyPolicies(policies: Policies | undefined): void {
    this.limiter.setPolicies(policies);
    const held = this.parts.role.policies;
    this.emit('policies', held.version, held.digest);
  }

  get policies(): Policies | undefined {
    return this.store.policies;
  }

  /**
   * Adaptive limits, as the application reports them: every limit is scaled by `factor`
   * (0 < factor <= 1) — on every node of a cluster, which takes the smallest factor a
   * member asks for (docs/policies.md).
   */
  setLoadFactor(factor: number): void {
    if (this.parts.loadControl === undefined) throw new RingLimitError('UNAVAILABLE', 'the node is not started');
    this.parts.loadControl.report(factor);
  }

  /** The factor in force: every limit is scaled by it (1: as given). */
  get loadFactor(): number {
    return this.store.loadFactor;
  }

  /** A request's caller-side timestamp never changes a decision, but its distance from this node's clock is kept as a statistic. */
  recordCallerTime(timestampMs: number): void {
    this.skew.record(timestampMs, this.options.clock.now());
  }

  // ---- what it is doing ---------------------------------------------------------------

  /** Gossip bytes this node has sent (0 without gossip): for capacity estimates. */
  gossipBytesSent(): number {
    return this.parts.role.gossipStats()?.bytesSent ?? 0;
  }

  stats(): NodeStats {
    const own = { store: this.store.stats(), decidedHere: this.decision.decided, callers: this.parts.callerStats(), loadFactor: this.loadFactor, callerSkew: this.skew, snapshot: this.parts.snapshotStats() };
    return nodeStats(own, this.parts.role.stats());
  }

  /**
   * This node's Prometheus metrics (prom-client registry; read from its counters at each
   * scrape): serve them on your own server, or with `httpPort` at GET /metrics.
   */
  metrics(): Registry {
    this.registry ??= createNodeMetrics({
      stats: () => this.stats(),
      decisionsPerAction: () => this.store.decisionsPerAction(),
      role: () => this.parts.role,
      latency: () => this.latency,
      envoy: () => this.envoyStats,
    });
    return this.registry;
  }

  // ---- lifecycle ----------------------------------------------------------------------

  private async start(): Promise<void> {
    const backend = nodeBackend(this, {
      role: () => this.parts.role,
      stopping: () => this.stopping !== undefined,
      decide: (request, maxWaitMs) => this.path.decide(request, maxWaitMs),
      parsePolicies: async (text) => (await loadPolicyText(text, 'SetPolicies', { maxBytes: this.options.policyMaxBytes, maxUsers: this.options.policyMaxUsers })).policies,
    });
    await this.parts.start(this.store, this.options, backend, this, {
      applyPolicies: (policies) => this.applyPolicies(policies),
      joined: (cluster) => {
        this.decision = cluster.decision;
        this.path.router = cluster.router;
      },
    });
  }

  /**
   * Stops the node. Graceful (default): mark this node draining so others stop routing
   * to it, hand every key's state to its new owner, write the snapshot (with dataDir),
   * leave the gossip, and close — all within drainTimeoutMs. Whatever fails on the way
   * (a snapshot that cannot be written), every socket and timer is closed before the
   * returned promise settles; it then rejects with the first failure.
   */
  stop(options: { graceful?: boolean } = {}): Promise<void> {
    this.stopping ??= this.parts.stop(options.graceful ?? true, Date.now() + this.options.drainTimeoutMs, () => this.limiter.close());
    return this.stopping;
  }
}

/** Starts a node. With no options: a single embedded node, no sockets. */
export function createNode(options: NodeOptionsInput = {}): Promise<RingLimitNode> {
  return RingLimitNode.create(options);
}
