import type * as grpc from '@grpc/grpc-js';
import type { Reservation } from '../../limiter/types.js';
import type { BatchQueue } from '../routing/adaptive-batcher.js';
import type { WireHealth, WireMembers } from '../api/proto.js';
import type { OutgoingRequest } from '../api/stream-codec.js';

/*
 * The two records the client's parts share: a call awaiting its answer, and the link to
 * a node it travels on.
 */

/** A request awaiting its answer: one object per call, reused across retries, and encoded as it is. */
export interface PendingCall extends OutgoingRequest {
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
export interface NodeLink {
  /** Position in the configured nodes, or -1 for an owner learned from the ring. */
  index: number;
  client: NodeClient;
  call: RawStream | undefined;
  downUntilMs: number;
  /** What waits to go to this node; its frames in flight are the messages the node has not reported `processed`. */
  batch: BatchQueue<PendingCall>;
}

/** AllowStream with its messages as bytes (see stream-codec.ts). */
export type RawStream = grpc.ClientDuplexStream<Uint8Array, Buffer>;

type Unary<Req, Res> = (request: Req, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response?: Res) => void) => grpc.ClientUnaryCall;

/** A node's RateLimiter service as the client calls it (rawRateLimiterClientConstructor): requests and decisions as bytes. */
export type NodeClient = grpc.Client & {
  allowStream(metadata: grpc.Metadata): RawStream;
  members: Unary<object, WireMembers>;
  health: Unary<object, WireHealth>;
  inspect: Unary<Uint8Array, Buffer>;
  reset: Unary<Uint8Array, Buffer>;
  setRemaining: Unary<Uint8Array, Buffer>;
};
