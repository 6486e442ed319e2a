import type { Clock } from '../common/clock.js';
import { isValidIpAddress } from './address.js';
import { BroadcastQueue } from './broadcast-queue.js';
import type { SwimLimits } from './defaults.js';
import type { Keyring } from './keyring.js';
import { decodePacket, encodedUpdateBytes, encodeMessage } from './message-codec.js';
import type { Message, Update } from './messages.js';
import { ReplayGuard, type Stamp } from './replay-guard.js';
import { countDrop, type SwimStats } from './stats.js';
import type { PacketTransport } from './transport.js';

/** A signed packet stamped further than this from the receiver's clock is refused (nodes keep clocks far closer with NTP). */
const REPLAY_MAX_SKEW_MS = 30_000;
/** msgpack fixarray -> array16 header, when a packet's update list grows past 15. */
export const ARRAY_HEADER_GROWTH_BYTES = 3;

export type Piggybacked = Extract<Message, { updates: readonly Update[] }>;

export interface PacketIoOptions {
  readonly transport: PacketTransport;
  readonly keyring: Keyring | undefined;
  /** The cluster name's bytes, carried by every packet. */
  readonly label: Uint8Array;
  readonly limits: SwimLimits;
  readonly counters: SwimStats;
  /** Wall clock for stamps (compared across nodes). */
  readonly wallClock: Clock;
  /** This process's first stamp epoch (0 without a keyring). */
  readonly epoch: number;
  /** How many times each queued update is piggybacked (it grows with the cluster). */
  readonly transmitLimit: () => number;
}

/**
 * Packets in and out: decoding and authenticating what arrives (the MAC, the receiver binding,
 * the replay window), stamping, signing and sending what leaves, and the queue of updates
 * piggybacked on outgoing packets.
 */
export class PacketIo {
  private readonly broadcasts: BroadcastQueue;
  private readonly replay: ReplayGuard | undefined;
  /** With a keyring: this process's stamp epoch and packet count. */
  private epoch: number;
  private packetsStamped = 0;

  constructor(private readonly options: PacketIoOptions) {
    this.broadcasts = new BroadcastQueue(options.limits.maxBroadcasts);
    this.epoch = options.epoch;
    this.replay =
      options.keyring === undefined ? undefined : new ReplayGuard({ maxClockSkewMs: REPLAY_MAX_SKEW_MS, maxSenders: options.limits.maxMembers * 2 });
  }

  /** Updates waiting to be piggybacked. */
  get pendingBroadcasts(): number {
    return this.broadcasts.size;
  }

  get broadcastsEvicted(): number {
    return this.broadcasts.evicted;
  }

  queueBroadcast(u: Update): void {
    this.broadcasts.enqueue(u, encodedUpdateBytes(u));
  }

  /**
   * A datagram that arrived for `selfId` from `fromAddress`: its message, or undefined when it
   * is dropped (counted by reason): malformed, unauthenticated, from ourselves, unbound, replayed.
   */
  receive(bytes: Uint8Array, fromAddress: string, selfId: string): Message | undefined {
    const { counters, keyring, limits, label } = this.options;
    counters.packetsReceived++;
    counters.bytesReceived += bytes.length;
    const result = decodePacket(bytes, keyring, limits, label, selfId);
    if (!result.ok) return void countDrop(counters, result.reason);
    if (!isValidIpAddress(fromAddress)) return void countDrop(counters, 'badSourceAddress');
    if (result.message.from === selfId) return void countDrop(counters, 'fromSelf');
    // Signed packets name their receiver (packet.ts), but for a join's Sync to a seed not known yet.
    if (keyring !== undefined && !result.bound && result.message.type !== 'sync') return void countDrop(counters, 'unbound');
    if (this.replay !== undefined) {
      const verdict = result.stamp === undefined ? 'replayed' : this.replay.accept(result.message.from, result.stamp, this.options.wallClock.now());
      if (verdict !== 'ok') return void countDrop(counters, verdict);
    }
    return result.message;
  }

  /** Encoded size of `message` as it would be sent, without a stamp: the base of a packet's byte budget. */
  bareBytes(message: Message): number {
    return encodeMessage(message, this.options.keyring, undefined, this.options.label).length;
  }

  /** `toId`: the member the packet is for, which a signed packet is bound to (see packet.ts). */
  send(message: Message, address: string, toId: string | undefined): void {
    const { counters, keyring, limits, label, transport } = this.options;
    const stamp = keyring === undefined ? undefined : this.nextStamp();
    const bytes = encodeMessage(message, keyring, stamp, label, toId);
    if (bytes.length > limits.maxPacketBytes) return countDrop(counters, 'outgoingOversize');
    counters.packetsSent++;
    counters.bytesSent += bytes.length;
    transport.send(bytes, address);
  }

  /** Sends `message` with queued updates piggybacked up to maxPacketBytes; `first` goes first (a buddy accusation). */
  sendWithPiggyback(message: Piggybacked, address: string, toId: string | undefined, first?: Update): void {
    const base = this.bareBytes(message);
    const budget = this.options.limits.maxPacketBytes - base - ARRAY_HEADER_GROWTH_BYTES - (first === undefined ? 0 : encodedUpdateBytes(first));
    const updates = this.broadcasts.take(Math.max(0, budget), this.options.transmitLimit(), first);
    this.send({ ...message, updates }, address, toId);
  }

  /** The next packet's stamp; a new epoch once the u32 sequence is used up (receivers take it: its time is later). */
  private nextStamp(): Stamp {
    if (this.packetsStamped >= 0xffff_ffff) {
      this.epoch = (this.epoch % 0x7fff_ffff) + 1;
      this.packetsStamped = 0;
    }
    return { epoch: this.epoch, seq: ++this.packetsStamped, ts: this.options.wallClock.now() };
  }
}
