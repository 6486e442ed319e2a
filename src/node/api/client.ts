import * as grpc from '@grpc/grpc-js';
import { RateLimitError, RingLimitError, invalidArgument, type ErrorCode } from '../../common/errors.js';
import type { RateLimitRequest, Reservation } from '../../limiter/types.js';
import { rateLimiterClientConstructor, type WireAllowBatchItem, type WireAllowRequest, type WireHealth } from './proto.js';
import { MAX_BATCH_ITEMS } from './public-service.js';

export interface ClientOptions {
  /** gRPC addresses (host:port) of any nodes of the cluster. */
  nodes: string[];
  /** Deadline of one batch call; past it the batch is retried on the next node. */
  timeoutMs: number;
  maxBatchSize: number;
  /** Calls made within this wait go in one AllowBatch (0: the same event-loop turn). */
  batchWaitMs: number;
  /** Requests queued or in flight at once. */
  maxPending: number;
  /** Send to nodes[0] first (fail over in list order); default: start at a random node. */
  preferFirst: boolean;
}

export const clientDefaults: Omit<ClientOptions, 'nodes'> = { timeoutMs: 2_000, maxBatchSize: 1_000, batchWaitMs: 0, maxPending: 100_000, preferFirst: false };

interface Queued {
  wire: WireAllowRequest;
  resolve: (r: Reservation) => void;
  reject: (e: Error) => void;
}

type BatchClient = grpc.Client & {
  allowBatch(
    request: { requests: WireAllowRequest[] },
    options: grpc.CallOptions,
    callback: (error: grpc.ServiceError | null, response?: { results?: WireAllowBatchItem[] }) => void,
  ): void;
  health(request: object, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response?: WireHealth) => void): void;
};

/**
 * A client for ringlimit clusters: batches calls into AllowBatch, and when a node is
 * down or slow moves the whole batch to the next node (any node can answer for any key).
 */
export class RingLimitClient {
  private readonly options: ClientOptions;
  private readonly clients: BatchClient[];
  private preferred: number;
  private queue: Queued[] = [];
  private inFlight = 0;
  private flushScheduled = false;
  private closed = false;
  private readonly flush = (): void => {
    this.flushScheduled = false;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatchSize);
      this.send(batch, 0);
    }
  };

  constructor(options: Partial<ClientOptions> & { nodes: string[] }) {
    this.options = { ...clientDefaults, ...options };
    const o = this.options;
    if (!Array.isArray(o.nodes) || o.nodes.length === 0 || !o.nodes.every((n) => typeof n === 'string' && /^[^\s]+:\d{1,5}$/.test(n))) {
      throw invalidArgument('nodes', `must be a non-empty list of host:port, got ${JSON.stringify(o.nodes)}`);
    }
    if (!(o.maxBatchSize >= 1 && o.maxBatchSize <= MAX_BATCH_ITEMS)) throw invalidArgument('maxBatchSize', `must be 1..${MAX_BATCH_ITEMS}`);
    const Ctor = rateLimiterClientConstructor();
    this.clients = o.nodes.map((address) => new Ctor(address, grpc.credentials.createInsecure()) as unknown as BatchClient);
    this.preferred = o.preferFirst ? 0 : Math.floor(Math.random() * this.clients.length);
  }

  allow(request: RateLimitRequest): Promise<Reservation> {
    return this.enqueue(toWireRequest(request));
  }

  reserve(request: RateLimitRequest, options: { maxWaitMs: number }): Promise<Reservation> {
    return this.enqueue({ ...toWireRequest(request), maxWaitMs: options.maxWaitMs });
  }

  health(nodeIndex = this.preferred): Promise<WireHealth> {
    const client = this.clients[nodeIndex % this.clients.length]!;
    return new Promise((resolve, reject) => {
      client.health({}, { deadline: Date.now() + this.options.timeoutMs }, (error, response) =>
        error !== null || response === undefined ? reject(unavailable(error)) : resolve(response),
      );
    });
  }

  close(): void {
    this.closed = true;
    for (const client of this.clients) client.close();
    const error = new RingLimitError('UNAVAILABLE', 'client closed');
    for (const q of this.queue) q.reject(error);
    this.queue = [];
  }

  private enqueue(wire: WireAllowRequest): Promise<Reservation> {
    if (this.closed) return Promise.reject(new RingLimitError('UNAVAILABLE', 'client closed'));
    if (this.queue.length + this.inFlight >= this.options.maxPending) {
      return Promise.reject(new RateLimitError('RESOURCE_EXHAUSTED', `more than ${this.options.maxPending} requests pending`));
    }
    return new Promise<Reservation>((resolve, reject) => {
      this.queue.push({ wire, resolve, reject });
      if (this.queue.length >= this.options.maxBatchSize) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        if (this.options.batchWaitMs === 0) setImmediate(this.flush);
        else setTimeout(this.flush, this.options.batchWaitMs);
      }
    });
  }

  private send(batch: Queued[], attempt: number): void {
    if (attempt >= this.clients.length) {
      const error = new RingLimitError('UNAVAILABLE', `no node answered (tried ${this.options.nodes.join(', ')})`);
      for (const q of batch) q.reject(error);
      return;
    }
    const index = (this.preferred + attempt) % this.clients.length;
    this.inFlight += batch.length;
    this.clients[index]!.allowBatch({ requests: batch.map((q) => q.wire) }, { deadline: Date.now() + this.options.timeoutMs }, (error, response) => {
      this.inFlight -= batch.length;
      if (error !== null || response === undefined) {
        const retryable = error === null || [grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.CANCELLED, grpc.status.INTERNAL].includes(error.code);
        if (retryable && !this.closed) {
          this.preferred = (index + 1) % this.clients.length; // stick to a node that works
          this.send(batch, attempt + 1);
        } else {
          for (const q of batch) q.reject(unavailable(error));
        }
        return;
      }
      const results = response.results ?? [];
      batch.forEach((q, i) => {
        const item = results[i];
        if (item?.decision !== undefined) {
          const d = item.decision;
          q.resolve({
            allowed: d.allowed ?? false,
            limit: d.limit ?? 0,
            remaining: d.remaining ?? 0,
            resetAtMs: d.resetAtMs ?? 0,
            retryAfterMs: d.retryAfterMs ?? 0,
            waitMs: d.waitMs ?? 0,
          });
        } else if (item?.error !== undefined) {
          q.reject(new RateLimitError((item.error.code || 'INTERNAL') as ErrorCode, item.error.message ?? '', item.error.field || undefined));
        } else {
          q.reject(new RingLimitError('INTERNAL', 'the node returned no result for this request'));
        }
      });
    });
  }
}

function toWireRequest(r: RateLimitRequest): WireAllowRequest {
  const wire: WireAllowRequest = { key: r.key, limit: r.limit, windowMs: r.windowMs, timestampMs: Date.now() };
  if (r.action !== undefined) wire.action = r.action;
  if (r.weight !== undefined) wire.weight = r.weight;
  if (r.cost !== undefined) wire.cost = r.cost;
  if (r.algorithm !== undefined) wire.algorithm = r.algorithm;
  if (r.burst !== undefined) wire.burst = r.burst;
  return wire;
}

function unavailable(error: grpc.ServiceError | null): RingLimitError {
  return new RingLimitError('UNAVAILABLE', error?.details ?? 'no response');
}
