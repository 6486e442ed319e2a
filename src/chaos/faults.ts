import type { Clock } from '../common/clock.js';
import type { PacketTransport } from '../gossip/index.js';
import type { FrameHandler, PeerTransport } from '../node/transport/peer-transport.js';

/**
 * Fault injection for the chaos harness, enabled only in harness mode (`ringlimit serve
 * --harness`): partitions of gossip and of peer gRPC traffic, one-way or both ways, and
 * clock offset and drift through the clock seam. Dropped traffic is silent, like a real
 * partition: senders find out by timeouts, not errors.
 */
export class FaultRules {
  /** gRPC addresses this node must not send peer frames to. */
  readonly peerSendBlocked = new Set<string>();
  /** Node ids whose peer frames this node must drop. */
  readonly peerReceiveBlocked = new Set<string>();
  /** Gossip addresses this node must not send datagrams to. */
  readonly gossipSendBlocked = new Set<string>();
  /** Gossip addresses whose datagrams this node must drop. */
  readonly gossipReceiveBlocked = new Set<string>();
  dropped = 0;

  heal(): void {
    this.peerSendBlocked.clear();
    this.peerReceiveBlocked.clear();
    this.gossipSendBlocked.clear();
    this.gossipReceiveBlocked.clear();
  }
}

export class FaultyPeerTransport implements PeerTransport {
  constructor(
    private readonly inner: PeerTransport,
    private readonly rules: FaultRules,
  ) {}

  send(address: string, frame: Uint8Array): boolean {
    if (this.rules.peerSendBlocked.has(address)) {
      this.rules.dropped++;
      return true; // silently lost
    }
    return this.inner.send(address, frame);
  }

  onFrame(handler: FrameHandler): void {
    this.inner.onFrame((frame, reply, from) => {
      if (from !== '' && this.rules.peerReceiveBlocked.has(from)) {
        this.rules.dropped++;
        return;
      }
      handler(frame, reply, from);
    });
  }

  onPeerDown(handler: (address: string) => void): void {
    this.inner.onPeerDown(handler);
  }

  disconnect(address: string): void {
    this.inner.disconnect(address);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

export class FaultyPacketTransport implements PacketTransport {
  constructor(
    private readonly inner: PacketTransport,
    private readonly rules: FaultRules,
  ) {}

  get localAddress(): string {
    return this.inner.localAddress;
  }

  send(bytes: Uint8Array, address: string): void {
    if (this.rules.gossipSendBlocked.has(address)) {
      this.rules.dropped++;
      return;
    }
    this.inner.send(bytes, address);
  }

  onPacket(handler: (bytes: Uint8Array, fromAddress: string) => void): void {
    this.inner.onPacket((bytes, from) => {
      if (this.rules.gossipReceiveBlocked.has(from)) {
        this.rules.dropped++;
        return;
      }
      handler(bytes, from);
    });
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * A clock with a settable offset and drift (parts per million), applied from the moment
 * they are set so time never jumps backwards by more than the offset change itself.
 */
export class ChaosClock implements Clock {
  private offsetMs = 0;
  private driftPpm = 0;
  private driftSinceMs: number;

  constructor(private readonly base: Clock) {
    this.driftSinceMs = base.now();
  }

  set(offsetMs: number, driftPpm: number): void {
    this.offsetMs = offsetMs;
    this.driftPpm = driftPpm;
    this.driftSinceMs = this.base.now();
  }

  now(): number {
    const t = this.base.now();
    return t + this.offsetMs + ((t - this.driftSinceMs) * this.driftPpm) / 1e6;
  }
}
