import type { IncomingMessage, ServerResponse } from 'node:http';
import { RingLimitError } from '../../common/errors.js';
import type { CallerConnection, CallerLedger, QueuedCall, TrackedCall } from './caller-ledger.js';

/** The ledger's key for an HTTP caller: its connection's "ip:port", as for gRPC. */
export const peerOfRequest = (req: IncomingMessage): string => `${req.socket.remoteAddress ?? ''}:${req.socket.remotePort ?? 0}`;

/**
 * One HTTP request on the caller ledger, as a gRPC call is (caller-bounds.ts): it runs on its
 * connection's share, or waits for room (its body unread: TCP holds it in the caller), or is
 * refused; its body must arrive within maxFirstMessageMs; its answer counts as unsent until
 * Node has handed it to the socket, and a caller that stops reading it is cut off. Ends on
 * the response's close, whatever the cause.
 */
export class HttpCall implements TrackedCall, QueuedCall {
  unsentBytes = 0;
  unsentSinceMs = 0;
  silentSinceMs = -1;
  private connection: CallerConnection | undefined;
  private waiting: { resolve: (connection: CallerConnection) => void; reject: (error: RingLimitError) => void } | undefined;
  private closed = false;

  constructor(
    private readonly ledger: CallerLedger,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
  ) {
    res.once('close', () => this.close());
  }

  /** Its connection's share once it may run; RESOURCE_EXHAUSTED when refused or it waited too long. */
  open(): Promise<CallerConnection> {
    const opening = this.ledger.openCall(peerOfRequest(this.req), this);
    if (opening === 'refused') {
      const { maxQueuedCalls, maxOpenCalls, maxCallsPerHost } = this.ledger.limits;
      this.closed = true;
      return Promise.reject(new RingLimitError('RESOURCE_EXHAUSTED', `${maxQueuedCalls} calls already wait for room on this node (it runs ${maxOpenCalls} at once, ${maxCallsPerHost} per host): retry later`));
    }
    if (opening !== 'queued') return Promise.resolve(this.opened(opening));
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  admit(connection: CallerConnection): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    if (waiting === undefined || this.closed) return;
    waiting.resolve(this.opened(connection));
  }

  expire(): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    this.closed = true;
    const { maxQueuedMs, maxOpenCalls, maxCallsPerHost } = this.ledger.limits;
    waiting?.reject(new RingLimitError('RESOURCE_EXHAUSTED', `waited ${maxQueuedMs} ms for room on this node (it runs ${maxOpenCalls} calls at once, ${maxCallsPerHost} per host): retry later`));
  }

  private opened(connection: CallerConnection): CallerConnection {
    this.connection = connection;
    this.silentSinceMs = this.ledger.now();
    return connection;
  }

  /** Its body has arrived. */
  bodyRead(): void {
    this.silentSinceMs = -1;
  }

  /** Its body did not arrive within maxFirstMessageMs: the connection goes (a slow sender holds nothing). */
  endSilent(): void {
    this.req.socket.destroy();
    this.close();
  }

  /** The answer, `bytes` long, is about to be written: unsent until the response finishes. */
  answering(bytes: number): void {
    const connection = this.connection;
    if (connection === undefined || this.closed) return;
    this.unsentBytes = bytes;
    this.unsentSinceMs = this.ledger.now();
    this.ledger.unsent(connection, bytes);
    this.res.once('finish', () => this.sent());
  }

  private sent(): void {
    const connection = this.connection;
    if (connection === undefined || this.unsentBytes === 0) return;
    this.ledger.sent(connection, this.unsentBytes);
    this.unsentBytes = 0;
  }

  /** Its caller stopped reading its answer: the connection goes. */
  reset(): void {
    this.ledger.stats.cancelledSlowStreams++;
    this.req.socket.destroy();
    this.close();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    const waiting = this.waiting;
    if (waiting !== undefined) {
      this.waiting = undefined;
      this.ledger.leaveQueue(this);
      waiting.reject(new RingLimitError('UNAVAILABLE', 'the caller went away while its request waited for room'));
      return;
    }
    const connection = this.connection;
    if (connection === undefined) return;
    this.sent();
    this.ledger.closeCall(connection, this);
  }
}
