import { seededRng, type Rng } from '../common/rng.js';
import type { Scheduler } from './scheduler.js';
import type { PacketTransport } from './transport.js';

export interface MemoryNetworkOptions {
  readonly scheduler: Scheduler;
  readonly rng?: Rng;
  /** Probability in [0, 1] that a datagram is lost. */
  readonly dropProbability?: number;
  /** One-way delivery delay. */
  readonly delayMs?: number;
  /** Datagrams bigger than this are dropped, as a real network would. */
  readonly maxPacketBytes?: number;
}

/**
 * In-memory datagram hub for protocol tests: loss, delay and (one-way) partitions,
 * all driven by the injected scheduler and seeded rng so a run replays exactly.
 */
export class MemoryNetwork {
  dropProbability: number;
  delayMs: number;
  delivered = 0;
  dropped = 0;
  private readonly endpoints = new Map<string, MemoryTransport>();
  private readonly blocked = new Set<string>();
  private readonly rng: Rng;
  private readonly scheduler: Scheduler;
  private readonly maxPacketBytes: number;
  private nextPort = 10_000;

  constructor(options: MemoryNetworkOptions) {
    this.scheduler = options.scheduler;
    this.rng = options.rng ?? seededRng(1);
    this.dropProbability = options.dropProbability ?? 0;
    this.delayMs = options.delayMs ?? 0;
    this.maxPacketBytes = options.maxPacketBytes ?? 65_507;
  }

  /** A transport on `address` (host:port); omit it to get the next free 127.0.0.1 port. */
  bind(address?: string): MemoryTransport {
    const local = address ?? `127.0.0.1:${this.nextPort++}`;
    if (this.endpoints.has(local)) throw new Error(`MemoryNetwork: ${local} is already bound`);
    const transport = new MemoryTransport(this, local);
    this.endpoints.set(local, transport);
    return transport;
  }

  /** Stop datagrams from `from` to `to` (one way). */
  block(from: string, to: string): void {
    this.blocked.add(`${from}>${to}`);
  }

  /** Two-way partition between groups of addresses. */
  partition(groupA: readonly string[], groupB: readonly string[]): void {
    for (const a of groupA) {
      for (const b of groupB) {
        this.block(a, b);
        this.block(b, a);
      }
    }
  }

  heal(): void {
    this.blocked.clear();
  }

  /** Inject a datagram with any claimed source: for fuzzing. */
  inject(bytes: Uint8Array, fromAddress: string, toAddress: string): void {
    this.endpoints.get(toAddress)?.deliver(bytes, fromAddress);
  }

  send(bytes: Uint8Array, from: string, to: string): void {
    if (bytes.length > this.maxPacketBytes || this.blocked.has(`${from}>${to}`) || this.rng.next() < this.dropProbability) {
      this.dropped++;
      return;
    }
    const copy = Uint8Array.from(bytes);
    this.scheduler.after(this.delayMs, () => {
      const target = this.endpoints.get(to);
      if (target === undefined) {
        this.dropped++;
        return;
      }
      this.delivered++;
      target.deliver(copy, from);
    });
  }

  unbind(address: string): void {
    this.endpoints.delete(address);
  }
}

export class MemoryTransport implements PacketTransport {
  private handler: ((bytes: Uint8Array, fromAddress: string) => void) | undefined;
  private closed = false;

  constructor(
    private readonly network: MemoryNetwork,
    readonly localAddress: string,
  ) {}

  send(bytes: Uint8Array, address: string): void {
    if (!this.closed) this.network.send(bytes, this.localAddress, address);
  }

  onPacket(handler: (bytes: Uint8Array, fromAddress: string) => void): void {
    this.handler = handler;
  }

  deliver(bytes: Uint8Array, fromAddress: string): void {
    if (!this.closed) this.handler?.(bytes, fromAddress);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.network.unbind(this.localAddress);
  }
}
