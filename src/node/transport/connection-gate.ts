import type { Socket } from 'node:net';
import { WakeTimer } from '../../common/wake-timer.js';
import { hostOfPeer } from './peer-auth.js';

/** What the gate holds connections to (a subset of CallerLimits). */
export interface GateLimits {
  maxConnections: number;
  maxConnectionsPerHost: number;
  maxConnectionSetupMs: number;
  maxUnauthenticatedPerHostPerSecond: number;
}

export interface GateStats {
  /** Connections open now on the public ports, and those of them not yet authorized. */
  connections: number;
  settingUp: number;
  /** Connections closed at once: their host (or the node) at its bound with none to make room, or their host refused for failed credentials. */
  refusedConnections: number;
  /** Connections closed to make room for a newer one (the oldest not yet authorized). */
  evictedConnections: number;
  /** Connections closed for making no authorized call within maxConnectionSetupMs. */
  closedUnready: number;
  /** Connections closed for their host's refused credentials past maxUnauthenticatedPerHostPerSecond. */
  closedUnauthenticated: number;
}

interface Tracked {
  readonly socket: Socket;
  readonly peer: string;
  readonly host: string;
  readonly sinceMs: number;
  trusted: boolean;
}

/** A host's rate of refused credentials: a token bucket of maxUnauthenticatedPerHostPerSecond (as much saved up); past it, the host is shut out for a second (the bucket set to minus the rate). */
interface Strikes {
  tokens: number;
  lastMs: number;
}

/** Hosts whose refused credentials are remembered at once (the oldest is forgotten past it). */
const MAX_STRUCK_HOSTS = 10_000;

/**
 * Closes a connection at once, with a TCP reset: a plain destroy() does not close a socket an
 * HTTP/2 session has taken over (its caller would never see it go, nor its descriptor be freed).
 */
function hangUp(socket: Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    // not a TCP handle: destroy() below
  }
  socket.destroy();
}

const peerOf = (socket: Socket): string => `${socket.remoteAddress ?? ''}:${socket.remotePort ?? 0}`;

/** The gate of every grpc.Server that has one, for the peer transport mounted on it. */
const gates = new WeakMap<object, ConnectionGate>();

/** The gate in front of `server`'s connections, if any. */
export function connectionGateOf(server: object): ConnectionGate | undefined {
  return gates.get(server);
}

/**
 * The connections of a node's public ports (gRPC and HTTP), bounded before a byte of theirs
 * is read: at most maxConnections in all and maxConnectionsPerHost per host. A connection is
 * "setting up" until it makes an authorized call (its TLS and HTTP/2 handshakes done, and
 * headers with a token this node accepts, or a peer hello that passes); one that does not
 * within maxConnectionSetupMs is closed; a host at its bound has its new connections refused,
 * and when the node is at its bound a new connection closes the oldest one still setting up
 * rather than being refused — so idle or handshake-less connections from many hosts, which
 * cost a file descriptor each, can never lock out callers that authenticate. A host whose calls
 * are refused for their credentials faster than maxUnauthenticatedPerHostPerSecond has the
 * connection closed and its new ones refused until its rate falls back. Keyed by the peer's
 * "ip:port", as grpc-js's getPeer() and Node's sockets give it.
 */
export class ConnectionGate {
  readonly stats: GateStats = { connections: 0, settingUp: 0, refusedConnections: 0, evictedConnections: 0, closedUnready: 0, closedUnauthenticated: 0 };
  private readonly byPeer = new Map<string, Tracked>();
  /** Connections setting up, oldest first. */
  private readonly settingUp = new Set<Tracked>();
  private readonly hosts = new Map<string, number>();
  /** Authorized connections per host: a host with one is never shut out (callers and members on the same host as an intruder). */
  private readonly trustedByHost = new Map<string, number>();
  private readonly strikes = new Map<string, Strikes>();
  private readonly sweeper: WakeTimer;
  private closed = false;

  constructor(
    readonly limits: GateLimits,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.sweeper = new WakeTimer(() => this.sweep(), Math.min(1_000, Math.max(10, limits.maxConnectionSetupMs / 4)));
  }

  /** Lets peer transports mounted on `server` find this gate (connectionGateOf). */
  guard(server: object): void {
    gates.set(server, this);
  }

  /** A new connection: tracked, or destroyed at once (false). Call before anything reads it. */
  admit(socket: Socket): boolean {
    const peer = peerOf(socket);
    const host = hostOfPeer(peer);
    if (this.closed || this.shutOut(host)) return this.refuse(socket);
    if ((this.hosts.get(host) ?? 0) >= this.limits.maxConnectionsPerHost) return this.refuse(socket);
    if (this.stats.connections >= this.limits.maxConnections && !this.evictOldest()) return this.refuse(socket);
    const tracked: Tracked = { socket, peer, host, sinceMs: this.now(), trusted: false };
    this.byPeer.set(peer, tracked);
    this.hosts.set(host, (this.hosts.get(host) ?? 0) + 1);
    this.stats.connections++;
    this.addSettingUp(tracked);
    socket.on('error', () => undefined);
    socket.once('close', () => this.forget(tracked));
    this.sweeper.wake();
    return true;
  }

  /** The connection of `peer` made an authorized call: it stays open as long as it likes (within the bounds). */
  trust(peer: string): void {
    const tracked = this.byPeer.get(peer);
    if (tracked === undefined || tracked.trusted) return;
    tracked.trusted = true;
    this.trustedByHost.set(tracked.host, (this.trustedByHost.get(tracked.host) ?? 0) + 1);
    this.removeSettingUp(tracked);
  }

  /**
   * A call or peer stream of `peer` was refused for its credentials. Past its host's rate the
   * connection is closed (true) unless it made an authorized call before, and the host is shut
   * out for a second unless it has such a connection (a member or caller on the same host).
   */
  strike(peer: string): boolean {
    const host = hostOfPeer(peer);
    const rate = this.limits.maxUnauthenticatedPerHostPerSecond;
    const nowMs = this.now();
    let strikes = this.strikes.get(host);
    if (strikes === undefined) {
      if (this.strikes.size >= MAX_STRUCK_HOSTS) this.strikes.delete(this.strikes.keys().next().value!);
      strikes = { tokens: rate, lastMs: nowMs };
      this.strikes.set(host, strikes);
    }
    strikes.tokens = Math.min(rate, strikes.tokens + ((nowMs - strikes.lastMs) * rate) / 1000) - 1;
    strikes.lastMs = nowMs;
    if (strikes.tokens >= 0) return false;
    // Shut out for a second: its bucket takes that long to come back to 0.
    strikes.tokens = (this.trustedByHost.get(host) ?? 0) > 0 ? 0 : -rate;
    const tracked = this.byPeer.get(peer);
    if (tracked === undefined || tracked.trusted) return false;
    this.stats.closedUnauthenticated++;
    hangUp(tracked.socket);
    return true;
  }

  /** Whether `peer`'s connection has made an authorized call. */
  trusted(peer: string): boolean {
    return this.byPeer.get(peer)?.trusted === true;
  }

  /** Closes every connection and admits no more (the node stops). */
  closeAll(): void {
    this.closed = true;
    this.sweeper.close();
    for (const tracked of [...this.byPeer.values()]) hangUp(tracked.socket);
  }

  /** Whether `host` refused too many credentials lately (its bucket not yet back above 0). */
  private shutOut(host: string): boolean {
    const strikes = this.strikes.get(host);
    if (strikes === undefined) return false;
    const rate = this.limits.maxUnauthenticatedPerHostPerSecond;
    const nowMs = this.now();
    const tokens = Math.min(rate, strikes.tokens + ((nowMs - strikes.lastMs) * rate) / 1000);
    if (tokens >= rate) this.strikes.delete(host);
    return tokens < 0;
  }

  private refuse(socket: Socket): false {
    this.stats.refusedConnections++;
    socket.on('error', () => undefined);
    hangUp(socket);
    return false;
  }

  /** Closes the oldest connection still setting up, making room; false when there is none. */
  private evictOldest(): boolean {
    const oldest = this.settingUp.values().next().value;
    if (oldest === undefined) return false;
    this.stats.evictedConnections++;
    this.forget(oldest);
    hangUp(oldest.socket);
    return true;
  }

  private addSettingUp(tracked: Tracked): void {
    this.settingUp.add(tracked);
    this.stats.settingUp = this.settingUp.size;
  }

  private removeSettingUp(tracked: Tracked): void {
    if (!this.settingUp.delete(tracked)) return;
    this.stats.settingUp = this.settingUp.size;
  }

  private forget(tracked: Tracked): void {
    if (this.byPeer.get(tracked.peer) !== tracked) return;
    this.byPeer.delete(tracked.peer);
    this.removeSettingUp(tracked);
    if (tracked.trusted) {
      const trusted = (this.trustedByHost.get(tracked.host) ?? 1) - 1;
      if (trusted <= 0) this.trustedByHost.delete(tracked.host);
      else this.trustedByHost.set(tracked.host, trusted);
    }
    const left = (this.hosts.get(tracked.host) ?? 1) - 1;
    if (left <= 0) this.hosts.delete(tracked.host);
    else this.hosts.set(tracked.host, left);
    this.stats.connections--;
  }

  /** Closes the connections that set up too long; true while some are still setting up. */
  private sweep(): boolean {
    const before = this.now() - this.limits.maxConnectionSetupMs;
    for (const tracked of this.settingUp) {
      if (tracked.sinceMs > before) break; // oldest first: the rest came later
      this.stats.closedUnready++;
      this.forget(tracked);
      hangUp(tracked.socket);
    }
    return this.settingUp.size > 0;
  }
}
