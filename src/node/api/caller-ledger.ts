import { invalidArgument } from '../../common/errors.js';
import { BatchBudget, type BatchBudgetStats } from './batch-budget.js';
import { CallQueue } from './caller-queue.js';
import { WakeTimer } from '../../common/wake-timer.js';
import { hostOfPeer } from '../transport/peer-auth.js';

/** What one caller (one connection) and all callers together may hold on a node at once. */
export interface CallerLimits {
  /**
   * Calls (HTTP/2 streams) open at once on one connection. Advertised to every connection as
   * SETTINGS_MAX_CONCURRENT_STREAMS: a caller's gRPC stack queues its calls past it, and HTTP/2
   * refuses a stream past it from a client that ignores the setting.
   */
  maxCallsPerConnection: number;
  /** Calls open at once across all connections; past it, calls wait for room (maxQueuedCalls). */
  maxOpenCalls: number;
  /** Calls open at once from one host (all its connections): many connections do not multiply a caller's share past it; past it, its calls wait for room. */
  maxCallsPerHost: number;
  /**
   * Calls waiting for room at once (their host or the node at its bound), in all: each is an
   * HTTP/2 stream whose request is not read until it runs. Past it, calls are refused with
   * RESOURCE_EXHAUSTED: a flood beyond what waiting can hold.
   */
  maxQueuedCalls: number;
  /** A call that waited this long for room is refused with RESOURCE_EXHAUSTED. */
  maxQueuedMs: number;
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
  /**
   * A unary call (or an HTTP request) that has run this long without its request arriving is
   * ended (DEADLINE_EXCEEDED; HTTP: the connection is closed): a call that sends headers and
   * never a body holds its slot no longer.
   */
  maxFirstMessageMs: number;
  /** Connections open at once on the node's public ports (gRPC and HTTP together); past it, a new one closes the oldest that has not yet made an authorized call, or is closed. */
  maxConnections: number;
  /** Connections open at once from one host (IP address); past it, its new connections are refused. */
  maxConnectionsPerHost: number;
  /** A connection that has not made an authorized call (TLS and HTTP/2 handshakes done, headers with a token this node accepts) this long after it opened is closed. */
  maxConnectionSetupMs: number;
  /**
   * Calls and peer streams one host may have refused for their credentials per second (bad or
   * no token, a peer stream without a valid hello); past it, the connection is closed and the
   * host's new connections are refused until its rate falls back under the bound.
   */
  maxUnauthenticatedPerHostPerSecond: number;
  /**
   * Percent of the event loop's time that large batches (over 100 requests, on gRPC and HTTP
   * alike) may take while no single call is coming; what they take is measured, the work their
   * forwarded requests cause included. Past it, new large batches are refused
   * (RESOURCE_EXHAUSTED, before they are decoded) and those under way wait.
   */
  largeBatchSharePercent: number;
  /** The same while single calls come (one within the last 100 ms): bulk work leaves them the rest. At most largeBatchSharePercent. */
  largeBatchShareWithCallsPercent: number;
}

export const callerLimitsDefaults: CallerLimits = {
  maxCallsPerConnection: 100,
  maxOpenCalls: 10_000,
  maxCallsPerHost: 1_000,
  maxQueuedCalls: 10_000,
  maxQueuedMs: 10_000,
  maxReadingCallsPerConnection: 2,
  maxItemsPerConnection: 100_000,
  maxUnsentBytesPerConnection: 4 * 1024 * 1024,
  maxUnsentBytes: 64 * 1024 * 1024,
  maxUnsentAgeMs: 10_000,
  maxFirstMessageMs: 10_000,
  maxConnections: 10_000,
  maxConnectionsPerHost: 1_000,
  maxConnectionSetupMs: 10_000,
  maxUnauthenticatedPerHostPerSecond: 20,
  largeBatchSharePercent: 50,
  largeBatchShareWithCallsPercent: 5,
};

export function validateCallerLimits(limits: CallerLimits): CallerLimits {
  for (const [name, value] of Object.entries(limits) as [keyof CallerLimits, number][]) {
    if (!Number.isSafeInteger(value) || value < 1) throw invalidArgument(`callerLimits.${name}`, `must be a positive integer (got ${String(value)})`);
  }
  if (limits.largeBatchSharePercent > 100) throw invalidArgument('callerLimits.largeBatchSharePercent', `must be a percentage from 1 to 100 (got ${limits.largeBatchSharePercent})`);
  if (limits.largeBatchShareWithCallsPercent > limits.largeBatchSharePercent) {
    throw invalidArgument('callerLimits.largeBatchShareWithCallsPercent', `must be a percentage from 1 to largeBatchSharePercent (${limits.largeBatchSharePercent}; got ${limits.largeBatchShareWithCallsPercent})`);
  }
  return limits;
}

export function emptyCallerStats(): CallerStats {
  return { openCalls: 0, queuedCalls: 0, callsQueued: 0, items: 0, unsentBytes: 0, connections: 0, refusedCalls: 0, refusedItems: 0, refusedUnsent: 0, refusedLarge: 0, refusedUnread: 0, cancelledSlowStreams: 0, endedSilentCalls: 0, largeBatchSlices: 0, largeBatchBusyMs: 0 };
}

/** An open call as the ledger watches it for a caller that stopped reading. */
export interface TrackedCall {
  readonly unsentBytes: number;
  /** When its unsent answers last made progress (or became unsent). */
  readonly unsentSinceMs: number;
  /** Drops the call and its unsent answers (RESOURCE_EXHAUSTED to the caller). */
  reset(): void;
  /** Since when it has been waiting for its request (a unary call or an HTTP request that runs); -1 once it has it, or for a stream. */
  readonly silentSinceMs: number;
  /** Ends it: its request did not arrive within maxFirstMessageMs (the ledger counted it). */
  endSilent(): void;
}

/** A call waiting for room (see CallerLedger.openCall). */
export interface QueuedCall {
  /** Runs it now: the ledger counts it open on `connection`'s share. */
  admit(connection: CallerConnection): void;
  /** Ends it with RESOURCE_EXHAUSTED: it waited maxQueuedMs (the ledger counted it refused). */
  expire(): void;
}

/** What became of a call that opens: open on its connection's share, waiting for room, or refused. */
export type Opening = CallerConnection | 'queued' | 'refused';

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

export interface CallerStats extends BatchBudgetStats {
  openCalls: number;
  /** Calls waiting for room now (their host or the node at its bound). */
  queuedCalls: number;
  /** Calls that had to wait for room before they ran (or were refused). */
  callsQueued: number;
  items: number;
  unsentBytes: number;
  connections: number;
  /** Calls refused: more waiting than maxQueuedCalls, or waited maxQueuedMs. */
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
  /** Calls ended because their request did not arrive within maxFirstMessageMs. */
  endedSilentCalls: number;
}

/**
 * The ledger of what callers hold on this node: open calls, requests in flight and answer
 * bytes not yet sent, per connection and in all. Every public call passes through it when
 * it opens and when it closes (the gRPC interceptor), and every piece of work asks it first
 * (the handlers), so a caller that opens too much or stops reading its answers is refused
 * before it costs more — and no other caller notices.
 */
export class CallerLedger {
  readonly stats: CallerStats = emptyCallerStats();
  /** The event-loop share of large batches on every public surface (see BatchBudget). */
  readonly largeBatches: BatchBudget;
  private readonly connections = new Map<string, CallerConnection>();
  /** Open calls per host (the peer address without its port). */
  private readonly hosts = new Map<string, number>();
  private readonly calls = new Set<TrackedCall>();
  private readonly queue = new CallQueue<TrackedCall & QueuedCall>();
  /** Whether admitQueued() is under way (a call it admits may close another at once). */
  private admitting = false;
  private readonly sweeper: WakeTimer;

  constructor(
    readonly limits: CallerLimits,
    /** Monotonic ms, for TrackedCall.unsentSinceMs too. */
    readonly now: () => number = () => performance.now(),
  ) {
    this.largeBatches = new BatchBudget({ sharePercent: limits.largeBatchSharePercent, withCallsPercent: limits.largeBatchShareWithCallsPercent }, this.stats, now);
    // Often enough that a stalled answer or a long wait is ended within half its bound past it.
    this.sweeper = new WakeTimer(() => this.sweep(), Math.min(1_000, Math.max(10, Math.min(limits.maxUnsentAgeMs, limits.maxQueuedMs, limits.maxFirstMessageMs) / 2)));
  }

  /**
   * A call opens on `peer`'s connection: it runs at once on its connection's share if its
   * connection, its host and the node have room; if not, it waits for room (queued: its
   * admit() is called when it runs, its expire() if it waits maxQueuedMs); refused only when
   * maxQueuedCalls already wait. A connection's own bound is what HTTP/2 already holds it to
   * (maxCallsPerConnection streams), so a call waits for it only in the instant between a
   * stream the caller reset and grpc-js reporting it closed.
   */
  openCall(peer: string, call: TrackedCall & QueuedCall): Opening {
    const host = hostOfPeer(peer);
    if (this.hasRoomFor(host) && this.connectionHasRoom(peer)) return this.open(peer, host, call);
    if (this.queue.size >= this.limits.maxQueuedCalls) {
      this.stats.refusedCalls++;
      return 'refused';
    }
    this.queue.add(call, host, peer, this.now());
    this.stats.queuedCalls = this.queue.size;
    this.stats.callsQueued++;
    this.sweeper.wake();
    return 'queued';
  }

  /** A waiting call ended before it ran. */
  leaveQueue(call: TrackedCall & QueuedCall): void {
    if (this.queue.remove(call)) this.stats.queuedCalls = this.queue.size;
  }

  /** Whether the node, and `host` within it, may run one more call. */
  private hasRoomFor(host: string): boolean {
    return this.stats.openCalls < this.limits.maxOpenCalls && (this.hosts.get(host) ?? 0) < this.limits.maxCallsPerHost;
  }

  private connectionHasRoom(peer: string): boolean {
    return (this.connections.get(peer)?.openCalls ?? 0) < this.limits.maxCallsPerConnection;
  }

  private open(peer: string, host: string, call: TrackedCall): CallerConnection {
    let connection = this.connections.get(peer);
    this.hosts.set(host, (this.hosts.get(host) ?? 0) + 1);
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

  /** Runs the waiting calls that now have room, hosts in turn. */
  private admitQueued(): void {
    if (this.admitting) return; // the loop below goes on with what the inner call freed
    this.admitting = true;
    try {
      while (this.queue.size > 0) {
        const next = this.queue.next(
          (host) => this.hasRoomFor(host),
          (peer) => this.connectionHasRoom(peer),
        );
        if (next === undefined) break;
        this.stats.queuedCalls = this.queue.size;
        next.call.admit(this.open(next.peer, next.host, next.call));
      }
    } finally {
      this.admitting = false;
    }
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
    this.admitQueued();
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
    if (!connection.lastRequestLarge || this.largeBatches.hasTime()) return true;
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

  /** Resets the calls whose answers stalled, ends those whose request never came, and refuses those that waited too long for room; true while calls are open or waiting (the sweep goes on). */
  sweep(): boolean {
    const nowMs = this.now();
    for (const call of this.calls) {
      if (call.unsentBytes > 0 && nowMs - call.unsentSinceMs > this.limits.maxUnsentAgeMs) call.reset();
      else if (call.silentSinceMs >= 0 && nowMs - call.silentSinceMs > this.limits.maxFirstMessageMs) {
        this.stats.endedSilentCalls++;
        call.endSilent();
      }
    }
    const stale = this.queue.takeWaitingSince(nowMs - this.limits.maxQueuedMs);
    if (stale.length > 0) {
      this.stats.queuedCalls = this.queue.size;
      this.stats.refusedCalls += stale.length;
      for (const call of stale) call.expire();
    }
    return this.calls.size > 0 || this.queue.size > 0;
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
