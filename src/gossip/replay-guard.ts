/** What an authenticated packet carries so that a copy of it can be refused. */
export interface Stamp {
  /** Random per process start: a restarted sender begins a new sequence. */
  epoch: number;
  /** Per packet sent, from 1. */
  seq: number;
  /** The sender's clock when it sent the packet, ms. */
  ts: number;
}

export interface ReplayGuardLimits {
  /** A packet whose stamp is further than this from the receiver's clock is refused. */
  maxClockSkewMs: number;
  /** Senders remembered; beyond it the one heard from least recently is forgotten. */
  maxSenders: number;
}

/** Packets at most this far below a sender's highest sequence are still accepted once (UDP reorders). */
const WINDOW = 32;

interface SenderState {
  epoch: number;
  highest: number;
  /** Bit i set: highest − i was seen. */
  seen: number;
  /** The newest stamp time accepted from this sender. */
  lastTs: number;
}

/**
 * Refuses replayed gossip (an attacker who captured a signed packet and sends it again):
 * per sender, a sliding window over its sequence numbers (as IPsec does), a new epoch
 * only with a newer timestamp than anything seen from the old one, and timestamps within
 * maxClockSkewMs of the receiver's clock. Bounded: maxSenders states.
 */
export class ReplayGuard {
  private readonly senders = new Map<string, SenderState>();

  constructor(private readonly limits: ReplayGuardLimits) {}

  /** Whether the packet is new; records it when it is. */
  accept(from: string, stamp: Stamp, nowMs: number): 'ok' | 'stale' | 'replayed' {
    if (!(Math.abs(nowMs - stamp.ts) <= this.limits.maxClockSkewMs)) return 'stale';
    let state = this.senders.get(from);
    if (state !== undefined && state.epoch !== stamp.epoch) {
      // A restart starts a new epoch, later than everything the old one sent; an older epoch's copy is a replay.
      if (stamp.ts <= state.lastTs) return 'replayed';
      state = undefined;
    }
    if (state === undefined) {
      this.remember(from, { epoch: stamp.epoch, highest: stamp.seq, seen: 1, lastTs: stamp.ts });
      return 'ok';
    }
    const behind = state.highest - stamp.seq;
    if (behind < 0) {
      const shift = -behind;
      state.seen = shift >= WINDOW ? 1 : ((state.seen << shift) | 1) >>> 0;
      state.highest = stamp.seq;
    } else if (behind >= WINDOW || (state.seen & (1 << behind)) !== 0) {
      return 'replayed';
    } else {
      state.seen = (state.seen | (1 << behind)) >>> 0;
    }
    if (stamp.ts > state.lastTs) state.lastTs = stamp.ts;
    // Most recently heard last: the Map's order is the eviction order.
    this.senders.delete(from);
    this.senders.set(from, state);
    return 'ok';
  }

  private remember(from: string, state: SenderState): void {
    this.senders.delete(from);
    if (this.senders.size >= this.limits.maxSenders) {
      const oldest = this.senders.keys().next().value;
      if (oldest !== undefined) this.senders.delete(oldest);
    }
    this.senders.set(from, state);
  }
}
