import { invalidArgument } from '../../common/errors.js';
import { BatchBudget, batchBudgetDefaults } from './batch-budget.js';
import { DemandTimer } from '../demand-timer.js';
import { hostOfPeer } from '../transport/peer-auth.js';

/** What one caller (one connection) and all callers together may hold on a node at once. */
export interface CallerLimits {
  /**
   * Calls (HTTP/2 streams) open at once on one connection. Advertised to every connection as
   * SETTINGS_MAX_CONCURRENT_STREAMS: a caller's gRPC stack queues its calls past it, and HTTP/2
   * refuses a stream past it from a client that ignores the setting.
   */
  maxCallsPerConnection: number;
  /** Calls open at once across all connections. */
  maxOpenCalls: number;
  /** Calls open at once from one host (all its connections): many connections do not multiply a caller's share past it. */
  maxCallsPerHost: number;
  /**
   * Unary calls of one connection whose request is being read at once; the others wait,
   * their bytes held back by HTTP/2 flow control in the caller, not in this node's memory.
   */
  maxReadingCallsPerConnection: number;
  /** Requests being decided at once for one connection (batch items and stream items together). */
  maxItemsPerConnection: number;
  /** Answer bytes handed to HTTP/2 but not yet sent, per connection: past it its new work is refused. */
  maxUnsentBytesPerConnection: number;
  /** Answer bytes not yet sent across all connections: past it large batches are refused and each connection's bound is a quarter. */
  maxUnsentBytes: number;
  /** A call whose unsent answers made no progress for this long is reset (its caller stopped reading). */
  maxUnsentAgeMs: number;
}

export const callerLimitsDefaults: CallerLimits = {
  maxCallsPerConnection: 100,
  maxOpenCalls: 10_000,
  maxCallsPerHost: 1_000,
  maxReadingCallsPerConnection: 2,
  maxItemsPerConnection: 100_000,
  maxUnsentBytesPerConnection: 4 * 1024 * 1024,
  maxUnsentBytes: 64 * 1024 * 1024,
  maxUnsentAgeMs: 10_000,
};

export function validateCallerLimits(limits: CallerLimits): CallerLimits {
  for (const [name, value] of Object.entries(limits) as [keyof CallerLimits, number][]) {
    if (!Number.isSafeInteger(value) || value < 1) throw invalidArgument(`callerLimits.${name}`, `must be a positive integer (got ${String(value)})`);
  }
  return limits;
}

/** An open call as the ledger watches it for a caller that stopped reading. */
export interface TrackedCall {
  readonly unsentBytes: number;
  /** When its unsent answers last made progress (or became unsent). */
  readonly unsentSinceMs: number;
  /** Drops the call and its unsent answers (RESOURCE_EXHAUSTED to the caller). */
  reset(): void;
}

/** A call waiting for its turn to read its request. */
export interface ReadWaiter {
  read(): void;
}

/** One connection's share, looked up by its peer address ("ip:port"). */
export interface CallerConnection {
  readonly peer: string;
  openCalls: number;
  reading: number;
  /** Whether its last request was a large batch: while large batches are past their share, its next is refused unread. */
  lastRequestLarge: boolean;
  /** Calls waiting to read their request, oldest first (at most maxCallsPerConnection). */
  readonly waitingToRead: ReadWaiter[];
  items: number;
  unsentBytes: number;
}

export interface CallerStats {
  openCalls: number;
  items: number;
  unsentBytes: number;
  connections: number;
  /** Calls refused for too many open on their connection or in all. */
  refusedCalls: number;
  /** Batches or stream items refused for too many requests in flight on their connection. */
  refusedItems: number;
  /** Work refused because its connection (or all) had too many answer bytes unsent. */
  refusedUnsent: number;
  /** Large batches refused (past their share of the event loop), and requests refused unread for following one. */
  refusedLarge: number;
  refusedUnread: number;
  /** Streams cancelled for not reading their answers. */
  cancelledSlowStreams: number;
}

/**
 * The ledger of what callers hold on this node: open calls, requests in flight and answer
 * bytes not yet sent, per connection and in all. Every public call passes through it when
 * it opens and when it closes (the gRPC interceptor), and every piece of work asks it first
 * (the handlers), so a caller that opens too much or stops reading its answers is refused
 * before it costs more — and no other caller notices.
 */
export class CallerLedger {
  readonly stats: CallerStats = { openCalls: 0, items: 0, unsentBytes: 0, connections: 0, refusedCalls: 0, refusedItems: 0, refusedUnsent: 0, refusedLarge: 0, refusedUnread: 0, cancelledSlowStreams: 0 };
  /** The event-loop share of large batches (see BatchBudget). */
  readonly largeBatches = new BatchBudget(batchBudgetDefaults);
  private readonly connections = new Map<string, CallerConnection>();
  /** Open calls per host (the peer address without its port). */
  private readonly hosts = new Map<string, number>();
  private readonly calls = new Set<TrackedCall>();
  private readonly sweeper: DemandTimer;

  constructor(
    readonly limits: CallerLimits,
    /** Monotonic ms, for TrackedCall.unsentSinceMs too. */
    readonly now: () => number = () => performance.now(),
  ) {
    this.sweeper = new DemandTimer(() => this.sweep(), Math.min(1_000, Math.max(10, limits.maxUnsentAgeMs / 2)));
  }

  /** A call opens on `peer`'s connection: its share, or undefined when refused. */
  openCall(peer: string, call: TrackedCall): CallerConnection | undefined {
    let connection = this.connections.get(peer);
    const host = hostOfPeer(peer);
    const hostCalls = this.hosts.get(host) ?? 0;
    if (this.stats.openCalls >= this.limits.maxOpenCalls || hostCalls >= this.limits.maxCallsPerHost || (connection !== undefined && connection.openCalls >= this.limits.maxCallsPerConnection)) {
      this.stats.refusedCalls++;
      return undefined;
    }
    this.hosts.set(host, hostCalls + 1);
    if (connection === undefined) {
      connection = { peer, openCalls: 0, reading: 0, lastRequestLarge: false, waitingToRead: [], items: 0, unsentBytes: 0 };
      this.connections.set(peer, connection);
      this.stats.connections++;
    }
    connection.openCalls++;
    this.stats.openCalls++;
    this.calls.add(call);
    this.sweeper.wake();
    return connection;
  }

  closeCall(connection: CallerConnection, call: TrackedCall): void {
    this.calls.delete(call);
    const host = hostOfPeer(connection.peer);
    const hostCalls = (this.hosts.get(host) ?? 1) - 1;
    if (hostCalls <= 0) this.hosts.delete(host);
    else this.hosts.set(host, hostCalls);
    connection.openCalls--;
    this.stats.openCalls--;
    this.forgetIfIdle(connection);
  }

  /** A connection is forgotten only when it holds nothing: no call, no request in flight, nothing unsent (so closing calls cannot reset its share). */
  private forgetIfIdle(connection: CallerConnection): void {
    if (connection.openCalls === 0 && connection.items === 0 && connection.unsentBytes === 0 && this.connections.get(connection.peer) === connection) {
      this.connections.delete(connection.peer);
      this.stats.connections--;
    }
  }

  /**
   * Whether a connection's next request may be read: not when its last one was a large
   * batch and large batches are past their share — refused unread, it costs no memory.
   */
  mayRead(connection: CallerConnection): boolean {
    if (!connection.lastRequestLarge || this.largeBatches.admit(Infinity)) return true;
    this.stats.refusedUnread++;
    return false;
  }

  /** Whether `call` may read its request now; if not, it is queued and its read() is called in turn. */
  startReading(connection: CallerConnection, call: ReadWaiter): boolean {
    if (connection.reading < this.limits.maxReadingCallsPerConnection) {
      connection.reading++;
      return true;
    }
    connection.waitingToRead.push(call);
    return false;
  }

  /** A call has read its request (or ended): the next waiting call of its connection reads. */
  doneReading(connection: CallerConnection): void {
    const next = connection.waitingToRead.shift();
    if (next === undefined) connection.reading--;
    else next.read();
  }

  /** A waiting call ended before its turn. */
  stopWaiting(connection: CallerConnection, call: ReadWaiter): void {
    const at = connection.waitingToRead.indexOf(call);
    if (at >= 0) connection.waitingToRead.splice(at, 1);
  }

  /** The share of a call's connection (opened by the interceptor); undefined outside a tracked call. */
  connection(peer: string): CallerConnection | undefined {
    return this.connections.get(peer);
  }

  /** Whether `count` more requests would be more than this connection may have in flight (counted as refused if so). */
  itemsFull(connection: CallerConnection, count: number): boolean {
    if (connection.items + count <= this.limits.maxItemsPerConnection) return false;
    this.stats.refusedItems++;
    return true;
  }

  takeItems(connection: CallerConnection, count: number): void {
    connection.items += count;
    this.stats.items += count;
  }

  itemsDone(connection: CallerConnection, count: number): void {
    connection.items -= count;
    this.stats.items -= count;
    this.forgetIfIdle(connection);
  }

  /**
   * Whether this connection, with `extraBytes` more, would hold more unsent than it may: its
   * own bound, or a quarter of it while the node as a whole holds too much. A connection with
   * nothing unsent may always have one answer in flight, however large.
   */
  connectionFull(connection: CallerConnection, extraBytes = 0): boolean {
    if (connection.unsentBytes === 0) return false;
    const bound = this.nodeFull() ? this.limits.maxUnsentBytesPerConnection / 4 : this.limits.maxUnsentBytesPerConnection;
    return connection.unsentBytes + extraBytes > bound;
  }

  /** Whether all connections together have so much unsent that large work must wait. */
  nodeFull(): boolean {
    return this.stats.unsentBytes > this.limits.maxUnsentBytes;
  }

  /** Counts a refusal for unsent answers (the caller decided to refuse). */
  refusedForUnsent(): void {
    this.stats.refusedUnsent++;
  }

  /** Resets the calls whose answers stalled; true while calls are open (the sweep goes on). */
  sweep(): boolean {
    const nowMs = this.now();
    for (const call of this.calls) {
      if (call.unsentBytes > 0 && nowMs - call.unsentSinceMs > this.limits.maxUnsentAgeMs) call.reset();
    }
    return this.calls.size > 0;
  }

  unsent(connection: CallerConnection, bytes: number): void {
    connection.unsentBytes += bytes;
    this.stats.unsentBytes += bytes;
  }

  sent(connection: CallerConnection, bytes: number): void {
    connection.unsentBytes -= bytes;
    this.stats.unsentBytes -= bytes;
    this.forgetIfIdle(connection);
  }
}
