import { EventEmitter } from 'node:events';
import { RingLimitError, invalidArgument } from '../common/errors.js';
import type { Member } from '../gossip/index.js';
import { rateRequest, windowRequest } from '../limiter/aliases.js';
import { Limiter, type AcquireOptions } from '../limiter/limiter.js';
import { Policies, type PolicyDocument } from '../limiter/policies.js';
import type { PolicySpec } from '../limiter/policy-handle.js';
import { NodePolicyHandle } from './node-policy-handle.js';
import { parsePolicyText } from './ops/policy-file.js';
import { LoadControl, eventLoopDelaySampler } from './sync/load-control.js';
import { startHttpApi, type HttpApi, type HttpApiBackend } from './api/http-api.js';
import { createNodeMetrics } from './ops/metrics.js';
import { LatencyHistogram } from '../common/latency.js';
import type { Registry } from './ops/metrics.js';
import { ApiTokens } from './transport/credentials.js';
import { META_GRPC, META_HTTP, META_STATE } from './routing/cluster-view.js';
import { AimdController } from '../limiter/adaptive.js';
import { policyVersionOf } from './sync/policy-sync.js';
import type { WirePoliciesInfo } from './api/proto.js';
import type { LimiterStore } from '../limiter/store.js';
import type { Decision, RateLimitRequest, Reservation, ResolvedParams } from '../limiter/types.js';
import { newResolvedParams } from '../limiter/validate.js';
import { PLACEMENT } from './routing/cluster-view.js';
import { Cluster } from './cluster/cluster.js';
import { RequestPath } from './routing/request-path.js';
import { localRouter, startingRouter } from './routing/router.js';
import { CallerSkew, nodeStats, type NodeStats } from './ops/node-stats.js';
import { resolveNodeOptions, type NodeOptions, type NodeOptionsInput } from './options.js';
import { OwnerDecision } from './routing/owner-decision.js';
import { AdminOp } from './wire/frames.js';
import type { EnvoyDescriptors } from '../envoy/descriptors.js';
import { EnvoyStats } from '../envoy/stats.js';
import { checkDataDir, loadSnapshot, type LoadResult } from './state/snapshot.js';
import { Snapshotter } from './state/snapshotter.js';

/** The largest HTTP request body a node reads (a 10,000-request batch is about 1 MB of JSON). */
const HTTP_MAX_BODY_BYTES = 2 * 1024 * 1024;

interface NodeEvents {
  /** Membership changed: a member joined, left, failed or updated. */
  membership: [event: 'join' | 'leave' | 'fail' | 'update', member: Member];
  /** The ring was rebuilt: key ownership changed. */
  ownership: [owners: string[]];
  /** Something went wrong that the node survives (a periodic snapshot failed to write). */
  warning: [error: Error];
  /** Other policies are in force (set here, from the file, or from another node). */
  policies: [version: number, digest: string];
  /** An operator inspected, reset or set a key through this node (`by`: who asked, as the caller said or the API authenticated). */
  admin: [record: AdminRecord];
}

/** One operator's operation on a key, for the logs. */
export interface AdminRecord {
  op: 'inspect' | 'reset' | 'set';
  action: string;
  key: string;
  /** What Set put (undefined for inspect and reset). */
  remaining: number | undefined;
  by: string;
  /** The key as it is after the operation. */
  result: Decision;
}

/** Who asks, for the logs (the APIs fill it from the caller's authenticated identity). */
export interface AdminOptions {
  by?: string;
}

/** Store slots a snapshot reads per chunk (each chunk is written before the next is read). */
const SNAPSHOT_SLOTS_PER_TURN = 20_000;

/**
 * A ringlimit node: the limiter core for the keys it owns, plus (in cluster mode) SWIM
 * membership, the ring, batched forwarding to owners, replication and handoff.
 * Create with createNode().
 */
export class RingLimitNode extends EventEmitter<NodeEvents> {
  readonly options: Readonly<NodeOptions>;
  readonly store: LimiterStore;
  /** The local core: store, idle-key sweeper and acquire()'s waiters. */
  private readonly limiter: Limiter;
  private decision: OwnerDecision;
  private cluster: Cluster | undefined;
  private readonly skew = new CallerSkew();
  /** Sampled decision latency: answered here, and answered by the owner it was forwarded to. */
  private readonly latency = { local: new LatencyHistogram(), forwarded: new LatencyHistogram() };
  /** Validation, latency sampling and the router: every request's way in. */
  private readonly path: RequestPath;
  private snapshotter: Snapshotter | undefined;
  private loadControl: LoadControl | undefined;
  private http: HttpApi | undefined;
  private registry: Registry | undefined;
  private readonly membershipEvents: Record<string, number> = { join: 0, leave: 0, fail: 0, update: 0 };
  private delaySampler: { sample: () => number; stop: () => void } | undefined;
  private loadedSnapshot: LoadResult = { loaded: 0 };
  private stopping: Promise<void> | undefined;

  private constructor(options: NodeOptions) {
    super();
    this.options = options;
    this.envoyConfig = options.envoyConfig;
    this.limiter = new Limiter({ ...options.store, clock: options.clock, policies: options.policies });
    this.store = this.limiter.store;
    this.decision = new OwnerDecision({ store: this.store }, { syncReplication: false });
    // A member decides nothing until its cluster is up (its APIs are served from the start).
    this.path = new RequestPath({ store: this.store, latency: this.latency }, options.cluster ? startingRouter : localRouter(this.decision));
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
  /** host:port of the HTTP API (with `httpPort`), else undefined. */
  get httpAddress(): string | undefined {
    return this.http?.address;
  }

  get gossipAddress(): string | undefined {
    return this.cluster?.membership.self.address;
  }

  /** Live members, including this node. */
  members(): Member[] {
    return this.cluster?.membership.members() ?? [];
  }

  /** Node ids currently owning keys, in ring order of ids. */
  owners(): string[] {
    return this.cluster?.view.ownerIds() ?? [this.nodeId];
  }

  /** Which node decides (action, key) right now: the same answer routing uses. */
  ownerOf(key: string, action = 'default'): string {
    return this.cluster?.view.ownerOf(action, key) ?? this.nodeId;
  }

  // ---- the API ------------------------------------------------------------------------

  allow(request: RateLimitRequest): Promise<Decision> {
    return this.path.promise(request, undefined);
  }

  /**
   * The synchronous fast path: the decision now when this node owns the key (or runs
   * alone) and nothing has to be waited for, or a hot key (`global: true`) answered from
   * this node's copy; undefined when it must be forwarded or fetched — then await
   * allow(). Throws RateLimitError for bad input, like the core.
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

  private envoyConfigInForce: EnvoyDescriptors | undefined;

  /** The Envoy rate limit configuration served on the gRPC port (docs/envoy.md); undefined stops serving it. */
  get envoyConfig(): EnvoyDescriptors | undefined {
    return this.envoyConfigInForce;
  }

  /** Takes a configuration in force (counted as a load: ringlimit_envoy_config_loads_total). */
  set envoyConfig(config: EnvoyDescriptors | undefined) {
    this.envoyConfigInForce = config;
    if (config !== undefined) this.envoyStats.configLoadSuccess++;
  }
  /** envoyproxy/ratelimit's stats of the Envoy service: per limit key, config loads, shadowed answers (metrics: ringlimit_envoy_*). */
  readonly envoyStats = new EnvoyStats();

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

  private async admin(op: AdminRecord['op'], request: RateLimitRequest, remaining: number | undefined, options: AdminOptions): Promise<Decision> {
    if (op === 'set' && (!Number.isSafeInteger(remaining) || remaining! < 0)) throw invalidArgument('remaining', `must be a non-negative integer, got ${String(remaining)}`);
    // Resolved as a decision would be (policies, load factor), into an object of its own: it travels.
    const p = this.store.resolve({ ...request, cost: 0 }, newResolvedParams());
    const wireOp = op === 'inspect' ? AdminOp.Inspect : AdminOp.Set;
    const target = op === 'set' ? remaining! : -1;
    const r = await this.path.router.admin(p, wireOp, target);
    const result: Decision = { allowed: r.allowed, limit: r.limit, remaining: r.remaining, resetAtMs: r.resetAtMs, retryAfterMs: r.retryAfterMs };
    this.emit('admin', { op, action: p.action, key: p.key, remaining: op === 'set' ? remaining : undefined, by: options.by ?? 'embedded', result });
    return result;
  }

  /**
   * Replaces the policies (validated first: a bad document throws and changes nothing);
   * undefined removes them. In a cluster the change gets a version past every one seen and
   * reaches every node (docs/policies.md); returns that version (0 on a lone node).
   */
  setPolicies(policies: PolicyDocument | Policies | undefined): number {
    const compiled = policies === undefined || policies instanceof Policies ? policies : new Policies(policies);
    if (this.cluster === undefined) {
      this.limiter.setPolicies(compiled);
      this.emit('policies', 0, policyVersionOf(compiled, 0).digest);
      return 0;
    }
    return this.cluster.policySync.change(compiled).version;
  }

  /** The policy document in force here: version, digest and canonical text. */
  private policyInfo(): WirePoliciesInfo {
    const held = this.cluster?.policySync.current ?? policyVersionOf(this.store.policies, 0);
    return { version: held.version, digest: held.digest, document: held.text };
  }

  /**
   * Adaptive limits, as the application reports them: every limit is scaled by `factor`
   * (0 < factor <= 1) — on every node of a cluster, which takes the smallest factor a
   * member asks for (docs/policies.md).
   */
  setLoadFactor(factor: number): void {
    if (this.loadControl === undefined) throw new RingLimitError('UNAVAILABLE', 'the node is not started');
    this.loadControl.report(factor);
  }

  /** Gossip bytes this node has sent (0 without gossip): for capacity estimates. */
  gossipBytesSent(): number {
    return this.cluster?.gossipStats()?.bytesSent ?? 0;
  }

  /** The factor in force: every limit is scaled by it (1: as given). */
  get loadFactor(): number {
    return this.store.loadFactor;
  }

  get policies(): Policies | undefined {
    return this.store.policies;
  }

  /**
   * A precompiled policy on this node: options validated once, one request shape for every
   * call. allowNow(key) answers synchronously for keys decided here; allow(key) also
   * forwards to the key's owner.
   */
  policy(spec: PolicySpec): NodePolicyHandle {
    return new NodePolicyHandle(this, spec);
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
   * A request's caller-side timestamp never changes a decision (the owner's clock alone
   * decides), but its distance from this node's clock is kept as a skew statistic.
   */
  recordCallerTime(timestampMs: number): void {
    this.skew.record(timestampMs, this.options.clock.now());
  }

  stats(): NodeStats {
    return nodeStats(this.store.stats(), this.decision.decided, this.skew, this.cluster, this.snapshotStats(), this.loadFactor);
  }

  private snapshotStats(): NodeStats['snapshot'] {
    const s = this.snapshotter?.stats ?? { written: 0, failed: 0, lastKeys: 0, lastWrittenAtMs: 0, lastError: '' };
    return { ...s, loadedKeys: this.loadedSnapshot.loaded, setAsideTo: this.loadedSnapshot.setAsideTo ?? '' };
  }

  // ---- lifecycle ----------------------------------------------------------------------

  private async start(): Promise<void> {
    const o = this.options;
    if (o.dataDir !== undefined) {
      await checkDataDir(o.dataDir);
      this.loadedSnapshot = await loadSnapshot(o.dataDir, o.nodeId, this.store, o.clock, o.onCorruptSnapshot);
      this.snapshotter = new Snapshotter(
        { store: this.store, clock: o.clock },
        { dataDir: o.dataDir, nodeId: o.nodeId, intervalMs: o.snapshotIntervalMs, slotsPerTurn: SNAPSHOT_SLOTS_PER_TURN },
        (error) => this.emit('warning', error),
      );
      this.snapshotter.start();
    }
    if (!o.cluster) {
      this.startLoadControl();
      await this.startHttp();
      return;
    }
    this.cluster = await Cluster.start(
      {
        store: this.store,
        api: this.backend(),
        onMembership: (event, member) => {
          this.membershipEvents[event] = (this.membershipEvents[event] ?? 0) + 1;
          this.loadControl?.update();
          this.emit('membership', event, member);
        },
        onOwnership: (owners) => this.emit('ownership', owners),
        policies: this.store.policies,
        applyPolicies: (policies) => {
          this.limiter.setPolicies(policies);
          const held = this.cluster?.policySync.current;
          this.emit('policies', held?.version ?? 0, held?.digest ?? '');
        },
        warn: (message) => this.emit('warning', new Error(message)),
      },
      o,
    );
    this.decision = this.cluster.decision;
    this.path.router = this.cluster.router;
    this.startLoadControl();
    await this.startHttp();
  }

  private async startHttp(): Promise<void> {
    const o = this.options;
    if (o.httpPort === undefined) return;
    this.http = await startHttpApi(this.backend(), { host: o.host, port: o.httpPort, maxBodyBytes: HTTP_MAX_BODY_BYTES, tls: o.tls, tokens: new ApiTokens(o.apiTokens), adminTokens: new ApiTokens(o.adminTokens) });
    const membership = this.cluster?.membership;
    if (membership !== undefined) membership.updateMeta({ ...membership.self.meta, [META_HTTP]: this.http.address });
  }

  /**
   * This node's Prometheus metrics (prom-client registry; read from its counters at each
   * scrape): serve them on your own server, or with `httpPort` at GET /metrics.
   */
  metrics(): Registry {
    this.registry ??= createNodeMetrics({
      stats: () => this.stats(),
      decisionsPerAction: () => this.store.decisionsPerAction(),
      gossip: () => this.cluster?.gossipStats(),
      members: () => Math.max(1, this.members().length),
      owners: () => this.owners().length,
      membershipEvents: () => this.membershipEvents,
      latency: () => this.latency,
      replicationLag: () => this.cluster?.replicator.lag,
      envoy: () => this.envoyStats,
    });
    return this.registry;
  }

  /** What the gRPC and HTTP APIs call. */
  private backend(): HttpApiBackend {
    const o = this.options;
    return {
      nodeId: o.nodeId,
      decide: (request, maxWaitMs) => this.path.decide(request, maxWaitMs),
      members: () => ({ owners: this.cluster?.view.ownerAddresses() ?? [], placement: PLACEMENT }),
      health: () => ({ nodeId: o.nodeId, status: this.stopping === undefined ? 'active' : 'draining', owners: this.owners(), members: this.members().length }),
      recordCallerTime: (timestampMs) => this.recordCallerTime(timestampMs),
      setPolicies: (text) => {
        this.setPolicies(text.trim() === '' ? undefined : parsePolicyText(text, 'SetPolicies'));
        return this.policyInfo();
      },
      getPolicies: () => this.policyInfo(),
      setLoadFactor: (factor) => {
        this.setLoadFactor(factor);
        return this.loadFactor;
      },
      envoy: () => ({ config: this.envoyConfig, settings: this.options.envoy, stats: this.envoyStats }),
      admin: async (op, request, remaining, by) => ({ ...(await this.admin(op, request, remaining, { by })), waitMs: 0 }),
      ready: () => this.readiness(),
      cluster: () => this.clusterInfo(),
      metrics: async () => ({ contentType: this.metrics().contentType, text: await this.metrics().metrics() }),
    };
  }

  /** Ready for traffic: a lone node once started; a member once active and owning keys; never while stopping. */
  private readiness(): { ready: boolean; reason: string } {
    if (this.stopping !== undefined) return { ready: false, reason: 'draining' };
    const cluster = this.cluster;
    if (cluster === undefined) return { ready: true, reason: 'running alone' };
    const state = cluster.membership.self.meta[META_STATE];
    if (state !== 'active') return { ready: false, reason: `state ${state ?? 'unknown'}` };
    if (!cluster.view.ownerIds().includes(this.nodeId)) return { ready: false, reason: 'not on the ring yet' };
    return { ready: true, reason: 'active, owning keys' };
  }

  /** The cluster as this node sees it (HTTP /v1/cluster). */
  private clusterInfo(): object {
    const cluster = this.cluster;
    const shares = cluster === undefined ? new Map([[this.nodeId, 1]]) : cluster.view.ownershipShares();
    return {
      nodeId: this.nodeId,
      members: this.members().map((m) => ({ nodeId: m.nodeId, gossip: m.address, grpc: m.meta[META_GRPC] ?? '', http: m.meta[META_HTTP] ?? '', state: m.meta[META_STATE] ?? '', liveness: m.state })),
      owners: this.owners(),
      ownershipShares: Object.fromEntries(shares),
      policyVersion: this.stats().policies.version,
      loadFactor: this.loadFactor,
    };
  }

  /** Adaptive limits: the factor from the application, the measured delay (with `adaptive`) and, in a cluster, every member. */
  private startLoadControl(): void {
    const o = this.options;
    this.delaySampler = o.adaptive === undefined ? undefined : eventLoopDelaySampler();
    this.loadControl = new LoadControl(
      { membership: this.cluster?.membership, apply: (factor) => (this.store.loadFactor = factor), sample: this.delaySampler?.sample, now: () => o.clock.now() },
      o.adaptive === undefined ? undefined : new AimdController(o.adaptive),
      o.adaptive?.sampleMs ?? 1_000,
    );
    this.loadControl.update();
  }

  /**
   * Stops the node. Graceful (default): mark this node draining so others stop routing
   * to it, hand every key's state to its new owner, write the snapshot (with dataDir),
   * leave the gossip, and close — all within drainTimeoutMs. Whatever fails on the way
   * (a snapshot that cannot be written), every socket and timer is closed before the
   * returned promise settles; it then rejects with the first failure.
   */
  stop(options: { graceful?: boolean } = {}): Promise<void> {
    this.stopping ??= this.shutdown(options.graceful ?? true);
    return this.stopping;
  }

  private async shutdown(graceful: boolean): Promise<void> {
    const deadlineMs = Date.now() + this.options.drainTimeoutMs;
    const failures: unknown[] = [];
    const attempt = (step: Promise<void> | undefined): Promise<void> | undefined => step?.catch((error: unknown) => void failures.push(error));
    this.loadControl?.close();
    this.delaySampler?.stop();
    if (graceful) await attempt(this.cluster?.drain(deadlineMs));
    await attempt(this.snapshotter?.close(graceful));
    this.limiter.close();
    await attempt(this.cluster?.close(graceful, deadlineMs));
    await attempt(this.http?.close());
    if (failures.length > 0) throw failures[0];
  }
}

/** Starts a node. With no options: a single embedded node, no sockets. */
export function createNode(options: NodeOptionsInput = {}): Promise<RingLimitNode> {
  return RingLimitNode.create(options);
}
