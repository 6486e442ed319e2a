import * as grpc from '@grpc/grpc-js';
import { RateLimitError, RingLimitError, invalidArgument, type ErrorCode } from '../../common/errors.js';
import type { RateLimitRequest, Reservation } from '../../limiter/types.js';
import { systemClock } from '../../common/clock.js';
import { AdaptiveBatcher, type BatchQueue } from '../routing/adaptive-batcher.js';
import { InFlightTable } from '../routing/in-flight.js';
import { ClusterView, PLACEMENT, type ViewMember } from '../routing/cluster-view.js';
import { MAX_BATCH_ITEMS } from '../api/backend.js';
import { allowStreamPath, rateLimiterClientConstructor, rawBytes, type WireAllowRequest, type WireAllowResponse, type WireHealth, type WireMembers } from '../api/proto.js';
import { decodeStreamResponse, encodeStreamRequest, type OutgoingRequest, type ResultVisitor } from '../api/stream-codec.js';
import { LatencyHistogram } from '../../common/latency.js';
import { createClientMetrics, type Registry } from '../ops/metrics.js';
import { channelCredentials, clientMetadata, type ClientTls } from '../transport/credentials.js';

export interface ClientOptions {
  /** gRPC addresses (host:port) of any nodes of the cluster. */
  nodes: string[];
  /** Deadline of one request on one node; past it the request is retried on the next node. */
  timeoutMs: number;
  /** Requests per stream message. */
  maxBatchSize: number;
  /**
   * Messages awaiting answers, shared by the nodes that have some in flight (each may
   * always have one); past a node's share, new requests gather into its next message
   * (adaptive batching, see AdaptiveBatcher).
   */
  maxFramesInFlight: number;
  /** Requests that go out at once, mid-turn, while their node has room in the window. */
  eagerBatchSize: number;
  /** Requests queued or awaiting an answer at once. */
  maxPending: number;
  /** Send to nodes[0] first (fail over in list order); default: start at a random node. */
  preferFirst: boolean;
  /** After a node's stream breaks, how long before it is tried again. */
  reconnectBackoffMs: number;
  /**
   * Learn the owners from the nodes (Members RPC) and send each request straight to its
   * key's owner. When false, each request goes to a configured node, which forwards it (one more hop).
   */
  ringAware: boolean;
  /** How often a ring-aware client asks for the owners. */
  ringRefreshMs: number;
  /** TLS to nodes that serve it: the CA that signed them and, for their mutual TLS, this client's certificate and key. */
  tls: ClientTls | undefined;
  /** A bearer token the nodes accept (sent as `authorization: Bearer <token>`). */
  token: string | undefined;
}

export const clientDefaults: Omit<ClientOptions, 'nodes'> = {
  timeoutMs: 2_000,
  maxBatchSize: 1_000,
  maxFramesInFlight: 4,
  eagerBatchSize: 16,
  maxPending: 100_000,
  preferFirst: false,
  reconnectBackoffMs: 200,
  ringAware: true,
  ringRefreshMs: 1_000,
  tls: undefined,
  token: undefined,
};

/** Links to nodes beyond the configured ones (learned owners) are bounded. */
const MAX_LINKS = 1_024;

export interface ClientStats {
  /** AllowStream messages sent, and the requests they carried (requests / messages = batch size). */
  messages: number;
  requests: number;
  /** Requests moved to another node (timeout, broken stream, UNAVAILABLE answer). */
  failovers: number;
  timeouts: number;
  streamBreaks: number;
}

/** A request awaiting its answer: one object per call, reused across retries, and encoded as it is. */
interface PendingCall extends OutgoingRequest {
  resolve: (r: Reservation) => void;
  reject: (e: Error) => void;
  /** The configured node tried first; the n-th fallback goes to the n-th node after it. */
  firstNode: number;
  /** The first attempt went to the key's owner (ring-aware); fallbacks then walk the configured nodes. */
  viaOwner: boolean;
  /** Nodes tried so far. */
  attempt: number;
  node: NodeLink | undefined;
  deadlineMs: number;
  /** When a sampled call was made (performance.now()), or -1: its latency is recorded. */
  startedMs: number;
}

/** One node: its gRPC client, its long-lived stream (opened lazily), and what waits to go out on it. */
interface NodeLink {
  /** Position in the configured nodes, or -1 for an owner learned from the ring. */
  index: number;
  client: StreamClient;
  call: RawStream | undefined;
  downUntilMs: number;
  /** What waits to go to this node; its frames in flight are the messages the node has not reported `processed`. */
  batch: BatchQueue<PendingCall>;
}

/** AllowStream with its messages as bytes (see stream-codec.ts). */
type RawStream = grpc.ClientDuplexStream<Uint8Array, Buffer>;

type Unary<Res> = (request: object, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response?: Res) => void) => void;

type StreamClient = grpc.Client & {
  members: Unary<WireMembers>;
  health: Unary<WireHealth>;
  inspect: Unary<WireAllowResponse>;
  reset: Unary<WireAllowResponse>;
  setRemaining: Unary<WireAllowResponse>;
};

/** An operator's call: the token of the nodes' --admin-token-file. */
export interface AdminCallOptions {
  adminToken: string;
}

const ERROR_CODES: ReadonlySet<string> = new Set<ErrorCode>(['INVALID_ARGUMENT', 'RESOURCE_EXHAUSTED', 'UNAVAILABLE', 'DEADLINE_EXCEEDED', 'ABORTED', 'FAILED_PRECONDITION', 'UNAUTHENTICATED', 'INTERNAL']);

/** The typed error of a failed unary call: the node's code and field from its trailers, else one from the gRPC status. */
function errorOfCall(error: grpc.ServiceError | null): RingLimitError {
  if (error === null) return new RingLimitError('UNAVAILABLE', 'no response');
  const said = String(error.metadata?.get('ringlimit-code')[0] ?? '');
  const field = error.metadata?.get('ringlimit-field')[0];
  const code: ErrorCode = ERROR_CODES.has(said) ? (said as ErrorCode) : error.code === grpc.status.DEADLINE_EXCEEDED ? 'DEADLINE_EXCEEDED' : error.code === grpc.status.UNAUTHENTICATED ? 'UNAUTHENTICATED' : 'UNAVAILABLE';
  const details = error.details.startsWith(`${code}: `) ? error.details.slice(code.length + 2) : error.details;
  return code === 'INVALID_ARGUMENT' ? new RateLimitError(code, details, field === undefined ? undefined : String(field)) : new RingLimitError(code, details, field === undefined ? undefined : String(field));
}

/** A request in the unary API's shape (proto-loader's camelCase); the node validates every field. */
function wireRequestOf(r: RateLimitRequest): WireAllowRequest {
  const w: WireAllowRequest = { key: r.key };
  if (r.action !== undefined) w.action = r.action;
  if (r.limit !== undefined) w.limit = r.limit;
  if (r.windowMs !== undefined) w.windowMs = r.windowMs;
  if (r.calendar !== undefined) w.calendar = r.calendar;
  if (r.timeZone !== undefined) w.timeZone = r.timeZone;
  if (r.weight !== undefined) w.weight = r.weight;
  if (r.cost !== undefined) w.cost = r.cost;
  if (r.algorithm !== undefined) w.algorithm = r.algorithm;
  if (r.burst !== undefined) w.burst = r.burst;
  if (r.global !== undefined) w.global = r.global;
  if (r.group !== undefined) w.group = r.group;
  return w;
}

function validate(o: ClientOptions): void {
  if (!Array.isArray(o.nodes) || o.nodes.length === 0 || !o.nodes.every((n) => typeof n === 'string' && /^[^\s]+:\d{1,5}$/.test(n))) {
    throw invalidArgument('nodes', `must be a non-empty list of host:port, got ${JSON.stringify(o.nodes)}`);
  }
  const range = (name: 'timeoutMs' | 'maxBatchSize' | 'maxFramesInFlight' | 'eagerBatchSize' | 'maxPending' | 'reconnectBackoffMs' | 'ringRefreshMs', min: number, max: number): void => {
    const v = o[name];
    if (typeof v !== 'number' || !(v >= min && v <= max)) throw invalidArgument(name, `must be a number from ${min} to ${max}, got ${String(v)}`);
  };
  range('timeoutMs', 1, 600_000);
  range('maxBatchSize', 1, MAX_BATCH_ITEMS);
  range('maxFramesInFlight', 1, 64);
  range('eagerBatchSize', 1, MAX_BATCH_ITEMS);
  range('maxPending', 1, 10_000_000);
  range('reconnectBackoffMs', 0, 60_000);
  range('ringRefreshMs', 50, 600_000);
  if (typeof o.ringAware !== 'boolean') throw invalidArgument('ringAware', 'must be a boolean');
  if (o.tls !== undefined && (!Buffer.isBuffer(o.tls.ca) || (o.tls.cert === undefined) !== (o.tls.key === undefined))) {
    throw invalidArgument('tls', 'must have ca, and cert with key or neither, as PEM buffers');
  }
  if (o.token !== undefined && (typeof o.token !== 'string' || !/^[\x21-\x7e]{1,512}$/.test(o.token))) throw invalidArgument('token', 'must be printable characters without spaces');
}

/**
 * A client for ringlimit clusters over one long-lived AllowStream per node. Ring-aware by
 * default: it learns the owners (Members RPC, about once a second) and sends each request
 * straight to its key's owner; a stale view costs a hop, never a wrong answer. Batching
 * adapts to load (AdaptiveBatcher, the same discipline as the peer streams): a message is
 * in flight until the node reports it `processed`. No timer per request: one interval
 * checks deadlines. A request that times out, or whose stream breaks, moves to
 * the next node (any node answers for any key).
 */
export class RingLimitClient {
  private readonly options: ClientOptions;
  /** The configured nodes, in order. */
  private readonly links: NodeLink[];
  /** Every link by address: configured nodes and learned owners. */
  private readonly linkByAddress = new Map<string, NodeLink>();
  /** The owners as the nodes last described them, and the view that places keys on them. */
  private owners: ViewMember[] = [];
  private readonly view: ClusterView;
  private readonly ringTimer: NodeJS.Timeout | undefined;
  private preferred: number;
  /** Every request sent and not answered, by id; in send order, so deadlines are in order too. */
  private readonly awaiting: InFlightTable<PendingCall>;
  /** Sent with every call: the bearer token, if any. */
  private readonly metadata: grpc.Metadata;
  /** Why nodes refused this client (a bad token), when they did: the error callers get instead of UNAVAILABLE. */
  private refusal: RingLimitError | undefined;
  private queued = 0;
  private closed = false;
  private readonly deadlineTimer: NodeJS.Timeout;
  private readonly batcher: AdaptiveBatcher<PendingCall>;
  private readonly counters: ClientStats = { messages: 0, requests: 0, failovers: 0, timeouts: 0, streamBreaks: 0 };
  /** Sampled call latency, from allow() to its answer. */
  private readonly latency = new LatencyHistogram();
  private registry: Registry | undefined;

  constructor(options: Partial<ClientOptions> & { nodes: string[] }) {
    this.options = { ...clientDefaults, ...options };
    validate(this.options);
    this.metadata = clientMetadata(this.options.token);
    this.awaiting = new InFlightTable(this.options.maxPending);
    this.batcher = new AdaptiveBatcher((queue, batch) => this.sendMessage(queue, batch), { ...this.options, batchWaitMs: 0 });
    this.links = this.options.nodes.map((address, index) => this.newLink(address, index));
    this.preferred = this.options.preferFirst ? 0 : Math.floor(Math.random() * this.links.length);
    this.deadlineTimer = setInterval(() => this.expire(), Math.max(5, this.options.timeoutMs / 4));
    this.deadlineTimer.unref();
    this.view = new ClusterView({ members: { current: () => this.owners }, clock: systemClock }, { selfId: '', replicas: 0, maxHandedAwayKeys: 0 });
    if (this.options.ringAware) {
      this.refreshRing();
      this.ringTimer = setInterval(() => this.refreshRing(), this.options.ringRefreshMs);
      this.ringTimer.unref();
    }
  }

  private newLink(address: string, index: number): NodeLink {
    const Ctor = rateLimiterClientConstructor();
    const link: NodeLink = {
      index,
      client: new Ctor(address, channelCredentials(this.options.tls)) as unknown as StreamClient,
      call: undefined,
      downUntilMs: 0,
      batch: this.batcher.queue(address),
    };
    this.linkByAddress.set(address, link);
    return link;
  }

  /** Asks a configured node for the owners; a failed or odd answer keeps the view as it was. */
  private refreshRing(): void {
    const link = this.links[this.preferred]!;
    link.client.members({}, this.metadata, { deadline: Date.now() + this.options.timeoutMs }, (error, response) => {
      if (error !== null || response === undefined || this.closed || response.placement !== PLACEMENT) return;
      const owners = (response.owners ?? []).slice(0, MAX_LINKS);
      if (!owners.every((o) => typeof o.nodeId === 'string' && typeof o.address === 'string' && /^[^\s]+:\d{1,5}$/.test(o.address))) return;
      this.owners = owners.map((o) => ({ nodeId: o.nodeId, address: o.address, owns: true }));
      this.view.refresh();
    });
  }

  /** The link to (action, key)'s owner, when the view knows it. */
  private ownerLink(request: RateLimitRequest): NodeLink | undefined {
    if (this.view.ownerCount === 0 || typeof request?.key !== 'string') return undefined;
    const address = this.view.addressOf(this.view.ownerOf(request.action ?? 'default', request.key));
    if (address === undefined) return undefined;
    const link = this.linkByAddress.get(address);
    if (link !== undefined) return link;
    return this.linkByAddress.size < MAX_LINKS ? this.newLink(address, -1) : undefined;
  }

  allow(request: RateLimitRequest): Promise<Reservation> {
    return this.submit(request, undefined);
  }

  reserve(request: RateLimitRequest, options: { maxWaitMs: number }): Promise<Reservation> {
    return this.submit(request, options.maxWaitMs);
  }

  /** An operator's look at a key at its owner: its remaining and reset time, consuming nothing. */
  inspect(request: RateLimitRequest, options: AdminCallOptions): Promise<Reservation> {
    return this.admin('inspect', request, undefined, options);
  }

  /** An operator gives a key its full allowance back at its owner (replicated like every change). */
  reset(request: RateLimitRequest, options: AdminCallOptions): Promise<Reservation> {
    return this.admin('reset', request, undefined, options);
  }

  /** An operator puts a key's remaining to `remaining` (0 to its capacity) at its owner. */
  setRemaining(request: RateLimitRequest, remaining: number, options: AdminCallOptions): Promise<Reservation> {
    return this.admin('setRemaining', request, remaining, options);
  }

  /** One unary call to a configured node, which carries it to the key's owner; the node logs the token's fingerprint as the caller. */
  private admin(method: 'inspect' | 'reset' | 'setRemaining', request: RateLimitRequest, remaining: number | undefined, options: AdminCallOptions): Promise<Reservation> {
    if (this.closed) return Promise.reject(new RingLimitError('UNAVAILABLE', 'client closed'));
    if (typeof request !== 'object' || request === null) return Promise.reject(invalidArgument('request', 'must be an object with key and the key\'s limits'));
    const token = (options as AdminCallOptions | undefined)?.adminToken;
    if (typeof token !== 'string' || !/^[\x21-\x7e]{1,512}$/.test(token)) return Promise.reject(invalidArgument('adminToken', 'must be printable characters without spaces'));
    const wire = wireRequestOf(request);
    const message = method === 'setRemaining' ? { request: wire, remaining } : wire;
    const client = this.links[this.preferred]!.client;
    return new Promise((resolve, reject) => {
      client[method](message, clientMetadata(token), { deadline: Date.now() + this.options.timeoutMs }, (error, response) => {
        if (error !== null || response === undefined) return reject(errorOfCall(error));
        resolve({ allowed: response.allowed, limit: response.limit, remaining: response.remaining, resetAtMs: response.resetAtMs, retryAfterMs: response.retryAfterMs, waitMs: response.waitMs });
      });
    });
  }

  /** Node ids owning keys, as the client last learned them (empty until it has, or when not ring-aware). */
  ownerIds(): string[] {
    return this.view.ownerIds();
  }

  health(nodeIndex = this.preferred): Promise<WireHealth> {
    const client = this.links[nodeIndex % this.links.length]!.client;
    return new Promise((resolve, reject) => {
      client.health({}, this.metadata, { deadline: Date.now() + this.options.timeoutMs }, (error, response) =>
        error !== null || response === undefined ? reject(new RingLimitError('UNAVAILABLE', error?.details ?? 'no response')) : resolve(response),
      );
    });
  }

  stats(): ClientStats {
    return { ...this.counters };
  }

  /**
   * The client's Prometheus metrics (prom-client registry, read at each scrape): its call
   * latency as ringlimit_decision_duration_seconds{path="client"}, and its counters. Give it
   * a registry of your own to add them to; not one a node in this process also uses.
   */
  metrics(registry?: Registry): Registry {
    this.registry ??= createClientMetrics({ stats: () => this.counters, latency: this.latency }, registry);
    return this.registry;
  }

  /** Requests queued or awaiting an answer. */
  get pending(): number {
    return this.queued + this.awaiting.size;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.deadlineTimer);
    if (this.ringTimer !== undefined) clearInterval(this.ringTimer);
    const error = new RingLimitError('UNAVAILABLE', 'client closed');
    for (const call of this.awaiting.values()) call.reject(error);
    this.awaiting.clear();
    for (const call of this.batcher.takeAll()) call.reject(error);
    for (const link of this.linkByAddress.values()) {
      link.call?.cancel();
      link.client.close();
    }
    this.queued = 0;
  }

  private submit(given: RateLimitRequest, maxWaitMs: number | undefined): Promise<Reservation> {
    if (this.closed) return Promise.reject(new RingLimitError('UNAVAILABLE', 'client closed'));
    if (typeof given !== 'object' || given === null) return Promise.reject(invalidArgument('request', 'must be an object with key, limit and windowMs'));
    // A copy: the caller may reuse its request object before this one is sent (the node validates every field).
    const request: RateLimitRequest = {
      key: given.key,
      action: given.action,
      limit: given.limit,
      windowMs: given.windowMs,
      weight: given.weight,
      cost: given.cost,
      algorithm: given.algorithm,
      burst: given.burst,
      global: given.global,
      group: given.group,
      calendar: given.calendar,
      timeZone: given.timeZone,
    };
    if (this.pending >= this.options.maxPending) {
      return Promise.reject(new RateLimitError('RESOURCE_EXHAUSTED', `more than ${this.options.maxPending} requests pending`));
    }
    return new Promise<Reservation>((resolve, reject) => {
      const call: PendingCall = { id: 0, request, maxWaitMs, timestampMs: 0, resolve, reject, firstNode: this.preferred, viaOwner: false, attempt: 0, node: undefined, deadlineMs: 0, startedMs: this.latency.sample() ? performance.now() : -1 };
      this.dispatch(call);
    });
  }

  /** Queues `call` for the next node to try, or fails it when every node was tried. */
  private dispatch(call: PendingCall): void {
    const link = this.nextLink(call);
    if (link === undefined) {
      call.reject(this.refusal ?? new RingLimitError('UNAVAILABLE', `no node answered (tried ${this.options.nodes.join(', ')})`));
      return;
    }
    call.node = link;
    this.queued++;
    this.batcher.add(link.batch, call);
  }

  /**
   * First the key's owner (ring-aware), then the configured nodes from firstNode on. A hot
   * key's plain allow skips the owner: every node answers it from its copy, so each client
   * stays with its preferred node (a random one) and many clients spread the key's load.
   */
  private nextLink(call: PendingCall): NodeLink | undefined {
    if (call.attempt === 0 && this.options.ringAware && !(call.request.global === true && call.maxWaitMs === undefined)) {
      const owner = this.ownerLink(call.request);
      if (owner !== undefined) {
        call.viaOwner = true;
        return owner;
      }
    }
    const fallback = call.attempt - (call.viaOwner ? 1 : 0);
    if (fallback >= this.links.length) return undefined;
    return this.links[(call.firstNode + fallback) % this.links.length];
  }

  /** One AllowStream message to the queue's node; false (after failing the batch over) when there is no stream. */
  private sendMessage(queue: BatchQueue<PendingCall>, batch: PendingCall[]): boolean {
    this.queued -= batch.length;
    const link = this.linkByAddress.get(queue.key)!;
    const stream = this.closed ? undefined : this.streamOf(link);
    if (stream === undefined) {
      this.failOver(batch, link);
      return false;
    }
    const deadlineMs = performance.now() + this.options.timeoutMs;
    // The caller's clock as the message leaves (nodes use it to detect clock skew): one read per message.
    const timestampMs = Date.now();
    for (const call of batch) {
      call.deadlineMs = deadlineMs;
      call.timestampMs = timestampMs;
      this.awaiting.add(call);
    }
    this.counters.messages++;
    this.counters.requests += batch.length;
    stream.write(encodeStreamRequest(batch));
    return true;
  }

  private streamOf(link: NodeLink): RawStream | undefined {
    if (link.call !== undefined) return link.call;
    if (performance.now() < link.downUntilMs) return undefined;
    const call: RawStream = link.client.makeBidiStreamRequest(allowStreamPath(), rawBytes.serialize, rawBytes.deserialize, this.metadata);
    link.call = call;
    call.on('data', (bytes: Buffer) => this.answered(link, call, bytes));
    const broken = (): void => this.streamBroke(link, call);
    call.on('error', (error: grpc.ServiceError) => {
      // Not a node failure: say so when no node answers, instead of "unavailable".
      if (error.code === grpc.status.UNAUTHENTICATED) this.refusal = new RingLimitError('UNAUTHENTICATED', `${link.client.getChannel().getTarget()} refused the call: ${error.details}`);
      broken();
    });
    call.on('end', broken);
    return call;
  }

  /** Settles the calls one response message answers; a malformed message drops the stream. */
  private answered(link: NodeLink, call: RawStream, bytes: Buffer): void {
    this.refusal = undefined; // a node answers: an earlier refusal no longer explains a failure
    let processed: number;
    try {
      processed = decodeStreamResponse(bytes, this.results);
    } catch {
      this.streamBroke(link, call);
      return;
    }
    // The node read these messages: what gathered meanwhile may go out.
    if (processed > 0) this.batcher.framesDone(link.batch, processed);
  }

  /** Where decoded answers go: one object for the client's life, no closure per answer. */
  private readonly results: ResultVisitor = {
    decision: (id, allowed, limit, remaining, resetAtMs, retryAfterMs, waitMs) => {
      const call = this.settle(id);
      if (call === undefined) return;
      if (call.startedMs >= 0) this.latency.record(performance.now() - call.startedMs);
      call.resolve({ allowed, limit, remaining, resetAtMs, retryAfterMs, waitMs });
    },
    error: (id, code, message, field) => {
      const call = this.settle(id);
      if (call === undefined) return;
      if (code === 'UNAVAILABLE') this.retry(call);
      else call.reject(new RateLimitError((code || 'INTERNAL') as ErrorCode, message || 'the node returned no result for this request', field || undefined));
    },
  };

  /** The call answered by `id`, no longer awaited; undefined when it moved on (timeout, broken stream). */
  private settle(id: number): PendingCall | undefined {
    return this.awaiting.take(id);
  }

  private streamBroke(link: NodeLink, call: RawStream): void {
    if (link.call !== call) return;
    this.counters.streamBreaks++;
    link.call = undefined;
    call.cancel();
    link.downUntilMs = performance.now() + this.options.reconnectBackoffMs;
    this.batcher.reset(link.batch);
    const lost: PendingCall[] = [];
    for (const pending of this.awaiting.values()) if (pending.node === link) lost.push(pending);
    for (const pending of lost) this.awaiting.take(pending.id);
    this.failOver(lost, link);
    if (!this.closed) this.failOver(this.takeQueue(link), link);
  }

  private takeQueue(link: NodeLink): PendingCall[] {
    const queue = this.batcher.take(link.batch);
    this.queued -= queue.length;
    return queue;
  }

  /** These calls move to the next node; later calls start at a node that works. */
  private failOver(calls: PendingCall[], from: NodeLink): void {
    if (this.closed) return;
    if (from.index >= 0 && this.preferred === from.index) this.preferred = (from.index + 1) % this.links.length;
    this.counters.failovers += calls.length;
    for (const call of calls) {
      call.attempt++;
      this.dispatch(call);
    }
  }

  private retry(call: PendingCall): void {
    if (call.node !== undefined) this.failOver([call], call.node);
  }

  /**
   * Deadlines are in send order (one timeout for all), so the scan stops at the first live
   * one. A request past its deadline moves to the next node, and its node's stream is
   * dropped (reopened after the backoff): a node that stops answering gets no more traffic.
   */
  private expire(): void {
    const nowMs = performance.now();
    const expired: PendingCall[] = [];
    for (let call = this.awaiting.oldest(); call !== undefined && call.deadlineMs <= nowMs; call = this.awaiting.oldest()) {
      this.awaiting.take(call.id);
      expired.push(call);
    }
    if (expired.length === 0) return;
    this.counters.timeouts += expired.length;
    const hung = new Set<NodeLink>();
    for (const call of expired) {
      if (call.node !== undefined) hung.add(call.node);
      this.retry(call);
    }
    for (const link of hung) if (link.call !== undefined) this.streamBroke(link, link.call);
  }
}
