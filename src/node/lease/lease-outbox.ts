import type { PeerTransport } from '../transport/peer-transport.js';
import { encodeFrame, frameLimits } from '../wire/codec.js';
import { FrameType, type LeaseAskBody, type LeaseReturnBody } from '../wire/frames.js';

/** What became of what the outbox sent: returns sent or lost (units), asks that could not leave. */
export interface LeaseOutboxEvents {
  returned(units: number): void;
  lost(units: number): void;
  askFailed(askId: number): void;
}

/**
 * A holder's asks and returns, gathered per owner address during an event-loop turn and sent
 * at its end (setImmediate, once per turn with something queued): one frame per owner, kind
 * and frameLimits.maxItems entries, not one per key.
 */
export class LeaseOutbox {
  private readonly asks = new Map<string, LeaseAskBody[]>();
  private readonly returns = new Map<string, LeaseReturnBody[]>();
  private queued = false;

  constructor(
    private readonly transport: Pick<PeerTransport, 'send'>,
    private readonly events: LeaseOutboxEvents,
  ) {}

  ask(address: string, ask: LeaseAskBody): void {
    let list = this.asks.get(address);
    if (list === undefined) this.asks.set(address, (list = []));
    list.push(ask);
    this.schedule();
  }

  giveBack(address: string, body: LeaseReturnBody): void {
    let list = this.returns.get(address);
    if (list === undefined) this.returns.set(address, (list = []));
    list.push(body);
    this.schedule();
  }

  private schedule(): void {
    if (this.queued) return;
    this.queued = true;
    setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.queued = false;
    const max = frameLimits.maxItems;
    for (const [address, list] of this.returns) {
      for (let i = 0; i < list.length; i += max) {
        const returns = list.slice(i, i + max);
        let units = 0;
        for (const r of returns) units += r.units;
        if (this.transport.send(address, encodeFrame({ type: FrameType.LeaseReturn, id: 0, returns }))) this.events.returned(units);
        else this.events.lost(units);
      }
    }
    this.returns.clear();
    for (const [address, list] of this.asks) {
      for (let i = 0; i < list.length; i += max) {
        const asks = list.slice(i, i + max);
        if (this.transport.send(address, encodeFrame({ type: FrameType.LeaseAsk, id: 0, asks }))) continue;
        for (const { item } of asks) this.events.askFailed(item.id);
      }
    }
    this.asks.clear();
  };
}
