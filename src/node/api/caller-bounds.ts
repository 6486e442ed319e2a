import { constants as http2 } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import type { CallerConnection, CallerLedger, QueuedCall, ReadWaiter, TrackedCall } from './caller-ledger.js';
import { batchBudgetDefaults } from './batch-budget.js';
import { PEER_METHOD } from '../transport/grpc-peer-transport.js';
import type { ApiTokens } from '../transport/credentials.js';
import type { ConnectionGate } from '../transport/connection-gate.js';

/** What a call's headers are checked against before it takes a slot, and the gate its connection passed. */
export interface CallGuard {
  tokens: ApiTokens;
  adminTokens: ApiTokens;
  gate: ConnectionGate;
}

/** The methods that need an admin token (and no API token). */
const ADMIN_PATHS = new Set(['SetPolicies', 'GetPolicies', 'Inspect', 'Reset', 'SetRemaining', 'SetLoadFactor'].map((m) => `/ringlimit.v1.RateLimiter/${m}`));

type Status = Parameters<grpc.ServerInterceptingCall['sendStatus']>[0];
type Listener = Parameters<grpc.ServerInterceptingCall['start']>[0];
type Metadata = Parameters<Listener['onReceiveMetadata']>[0];

/** What an answer that is not bytes (a generated unary answer: Allow, Members, Health) counts as. */
const SMALL_ANSWER_BYTES = 256;

const withCode = (code: grpc.status, name: string, details: string): Status => {
  const metadata = new grpc.Metadata();
  metadata.set('ringlimit-code', name);
  return { code, details: `${name}: ${details}`, metadata };
};
const exhausted = (details: string): Status => withCode(grpc.status.RESOURCE_EXHAUSTED, 'RESOURCE_EXHAUSTED', details);

/** Why a call's headers are refused (undefined: they carry the token its method needs). */
function refusal(guard: CallGuard, path: string, metadata: Metadata): string | undefined {
  if (!ADMIN_PATHS.has(path)) return guard.tokens.allows(metadata) ? undefined : 'a bearer token this node accepts is required (authorization: Bearer <token>)';
  if (!guard.adminTokens.required) return 'admin calls are off: start the node with --admin-token-file';
  return guard.adminTokens.allows(metadata) ? undefined : 'an admin token this node accepts is required (authorization: Bearer <token>)';
}

interface ResettableStream {
  close(code: number): void;
}

/**
 * The HTTP/2 stream under grpc-js's own call (its BaseServerInterceptingCall keeps it as
 * `stream`). A status cannot overtake answers the caller has not read, so only a reset
 * frees them; without the stream (a grpc-js that keeps it elsewhere), a status is sent.
 */
function http2StreamOf(call: grpc.ServerInterceptingCallInterface): ResettableStream | undefined {
  const stream: unknown = Reflect.get(call, 'stream');
  if (typeof stream !== 'object' || stream === null) return undefined;
  return typeof Reflect.get(stream, 'close') === 'function' ? (stream as ResettableStream) : undefined;
}

/**
 * Tells the connection of `call` to go away (GOAWAY naming this stream the last it will
 * process, then a graceful close): nghttp2 then ignores the streams the caller sent after it,
 * even those already read in the same packet, so a connection that opens 100 calls without
 * credentials costs one refusal, not 100.
 */
function goAway(call: grpc.ServerInterceptingCallInterface): void {
  const stream: unknown = Reflect.get(call, 'stream');
  if (typeof stream !== 'object' || stream === null) return;
  const session: unknown = Reflect.get(stream, 'session');
  const id: unknown = Reflect.get(stream, 'id');
  if (typeof session !== 'object' || session === null || typeof id !== 'number') return;
  const { goaway, close, closed } = session as { goaway?: unknown; close?: unknown; closed?: unknown };
  if (typeof goaway !== 'function' || typeof close !== 'function' || closed === true) return;
  try {
    (goaway as (code: number, lastStreamId: number) => void).call(session, http2.NGHTTP2_NO_ERROR, id);
    (close as () => void).call(session);
  } catch {
    // the session is already going
  }
}

/**
 * A peer stream as the peer transport answers it: one it refuses (UNAUTHENTICATED) on a
 * connection that never authenticated sends that connection away (see goAway).
 */
class PeerCall extends grpc.ServerInterceptingCall {
  constructor(
    private readonly next: grpc.ServerInterceptingCallInterface,
    private readonly gate: ConnectionGate,
  ) {
    super(next);
  }

  override sendStatus(status: Status): void {
    super.sendStatus(status);
    if (status.code === grpc.status.UNAUTHENTICATED && !this.gate.trusted(this.next.getPeer())) goAway(this.next);
  }
}

/**
 * One call, bounded: it opens on its connection's share of the ledger — or waits for room
 * there, its handler not yet started and its request unread, or is refused with
 * RESOURCE_EXHAUSTED when too many wait or it waited too long — reads its request (if
 * unary) only in one of its connection's reading turns, counts its answers as unsent until
 * HTTP/2 has sent them, and — when its connection already has more unsent than it may — is
 * reset with ENHANCE_YOUR_CALM, which gRPC callers see as RESOURCE_EXHAUSTED and which frees
 * what the caller left unread at once.
 */
class BoundedCall extends grpc.ServerInterceptingCall implements ReadWaiter, TrackedCall, QueuedCall {
  private connection: CallerConnection | undefined;
  /** While it waits for room: what its handler is told once it runs. */
  private queued: { listener: Listener; metadata: Metadata } | undefined;
  unsentBytes = 0;
  unsentSinceMs = 0;
  private closed = false;
  /** A unary call's request read: not yet asked for, waiting for its turn, under way, or done. */
  private readState: 'none' | 'waiting' | 'reading' | 'done';
  /** While a unary call runs without its request: since when (see CallerLimits.maxFirstMessageMs). */
  silentSinceMs = -1;

  constructor(
    private readonly next: grpc.ServerInterceptingCallInterface,
    private readonly ledger: CallerLedger,
    private readonly guard: CallGuard | undefined,
    private readonly path: string,
    private readonly unary: boolean,
  ) {
    super(next);
    this.readState = unary ? 'none' : 'done';
  }

  override start(listener: Listener): void {
    super.start({
      onReceiveMetadata: (metadata) => {
        const peer = this.next.getPeer();
        // Credentials first: a call that may not run never takes a slot, and its connection stays "setting up".
        const guard = this.guard;
        if (guard !== undefined) {
          const refused = refusal(guard, this.path, metadata);
          if (refused !== undefined) {
            this.closed = true;
            guard.gate.strike(peer);
            super.sendStatus(withCode(grpc.status.UNAUTHENTICATED, 'UNAUTHENTICATED', refused));
            // A connection that has never authenticated gets no second try on it.
            if (!guard.gate.trusted(peer)) goAway(this.next);
            return;
          }
          guard.gate.trust(peer);
        }
        const opening = this.ledger.openCall(peer, this);
        if (opening === 'refused') {
          const { maxQueuedCalls, maxOpenCalls, maxCallsPerHost } = this.ledger.limits;
          this.refuse(`${maxQueuedCalls} calls already wait for room on this node (it runs ${maxOpenCalls} at once, ${maxCallsPerHost} per host): retry later`);
        } else if (opening === 'queued') {
          this.queued = { listener, metadata };
        } else {
          this.opened(opening);
          listener.onReceiveMetadata(metadata);
        }
      },
      onReceiveMessage: (message) => {
        const connection = this.connection;
        if (connection === undefined || this.closed) return;
        this.silentSinceMs = -1;
        this.readDone();
        // A caller that does not read its answers gets no more work, on this call or another.
        if (this.ledger.connectionFull(connection)) {
          this.ledger.refusedForUnsent();
          this.reset();
          return;
        }
        listener.onReceiveMessage(message);
      },
      onReceiveHalfClose: () => {
        if (this.connection !== undefined) listener.onReceiveHalfClose();
      },
      onCancel: () => {
        this.close();
        listener.onCancel();
      },
    });
  }

  /** Room was made for it: its handler starts. */
  admit(connection: CallerConnection): void {
    const queued = this.queued;
    this.queued = undefined;
    if (queued === undefined || this.closed) return;
    this.opened(connection);
    queued.listener.onReceiveMetadata(queued.metadata);
  }

  /** It runs on `connection`'s share; a unary call's request is now due within maxFirstMessageMs. */
  private opened(connection: CallerConnection): void {
    this.connection = connection;
    if (this.unary) this.silentSinceMs = this.ledger.now();
  }

  /** Its request did not arrive in time (the ledger took it out of its sweep's count). */
  endSilent(): void {
    this.sendStatus(withCode(grpc.status.DEADLINE_EXCEEDED, 'DEADLINE_EXCEEDED', `no request within ${this.ledger.limits.maxFirstMessageMs} ms of the call's start`));
  }

  /** It waited maxQueuedMs (the ledger took it out). */
  expire(): void {
    this.queued = undefined;
    const { maxQueuedMs, maxOpenCalls, maxCallsPerHost } = this.ledger.limits;
    this.refuse(`waited ${maxQueuedMs} ms for room on this node (it runs ${maxOpenCalls} calls at once, ${maxCallsPerHost} per host): retry later`);
  }

  private refuse(details: string): void {
    this.closed = true;
    super.sendStatus(exhausted(details));
  }

  /** The first read of a unary call waits for one of its connection's reading turns. */
  override startRead(): void {
    const connection = this.connection;
    if (this.readState !== 'none' || connection === undefined || this.closed) {
      super.startRead();
      return;
    }
    if (this.ledger.startReading(connection, this)) this.read();
    else this.readState = 'waiting';
  }

  read(): void {
    this.readState = 'reading';
    if (this.connection !== undefined && !this.ledger.mayRead(this.connection)) {
      this.sendStatus(exhausted(`busy with large batches: retry, or send at most ${batchBudgetDefaults.smallBatchItems} requests per batch`));
      return;
    }
    super.startRead();
  }

  private readDone(): void {
    if (this.readState === 'reading' && this.connection !== undefined) this.ledger.doneReading(this.connection);
    this.readState = 'done';
  }

  override sendMessage(message: unknown, callback: () => void): void {
    const connection = this.connection;
    if (connection === undefined || this.closed) return;
    const bytes = message instanceof Uint8Array ? message.byteLength : SMALL_ANSWER_BYTES;
    if (this.ledger.connectionFull(connection, bytes)) {
      this.reset();
      return;
    }
    if (this.unsentBytes === 0) this.unsentSinceMs = this.ledger.now();
    this.unsentBytes += bytes;
    this.ledger.unsent(connection, bytes);
    super.sendMessage(message, () => {
      if (!this.closed) {
        this.unsentBytes -= bytes;
        this.ledger.sent(connection, bytes);
        if (this.unsentBytes > 0) this.unsentSinceMs = this.ledger.now();
      }
      callback();
    });
  }

  override sendStatus(status: Status): void {
    this.close();
    super.sendStatus(status);
  }

  /** Drops this call and what it left unsent: the slow reader's answers are never sent. */
  reset(): void {
    if (this.closed) return;
    this.ledger.stats.cancelledSlowStreams++;
    const stream = http2StreamOf(this.next);
    this.close();
    if (stream !== undefined) stream.close(http2.NGHTTP2_ENHANCE_YOUR_CALM);
    else super.sendStatus(exhausted('answers not read: the caller has too many unsent'));
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.queued !== undefined) {
      this.queued = undefined;
      this.ledger.leaveQueue(this);
    }
    const connection = this.connection;
    if (connection === undefined) return;
    if (this.readState === 'waiting') this.ledger.stopWaiting(connection, this);
    this.readDone();
    if (this.unsentBytes > 0) this.ledger.sent(connection, this.unsentBytes);
    this.unsentBytes = 0;
    this.ledger.closeCall(connection, this);
  }
}

/**
 * The grpc.Server options that bound callers: every call passes the ledger's interceptor,
 * and every connection is told in its HTTP/2 SETTINGS (SETTINGS_MAX_CONCURRENT_STREAMS) how
 * many calls it may have open at once. A caller's gRPC stack keeps the calls past it queued
 * on its side (grpc-js, grpcio and grpc-go all do) instead of sending them to be refused;
 * a stream past it from a client that ignores the setting is refused by HTTP/2 itself.
 */
/** Without a guard (a server bound by hand, as in tests), credentials are left to the handlers. */
export function callerServerOptions(ledger: CallerLedger, guard?: CallGuard): grpc.ServerOptions {
  return { 'grpc.max_concurrent_streams': ledger.limits.maxCallsPerConnection, interceptors: [callerBoundsInterceptor(ledger, guard)] };
}

/** The gRPC server interceptor that checks every call's credentials on its headers, then puts it on the ledger (see BoundedCall). */
export function callerBoundsInterceptor(ledger: CallerLedger, guard: CallGuard | undefined): grpc.ServerInterceptor {
  // Peer streams are not the public's: authenticated by their own handshake (with a deadline; the transport reports it to the gate), bounded by membership, and never refused for what callers hold.
  return (method, call) => {
    if (method.path !== PEER_METHOD) return new BoundedCall(call, ledger, guard, method.path, !method.requestStream);
    return guard === undefined ? new grpc.ServerInterceptingCall(call) : new PeerCall(call, guard.gate);
  };
}
