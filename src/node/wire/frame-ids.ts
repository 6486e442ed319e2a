/** A component that waits for the acks of frames it sent. */
export interface AckReceiver {
  onAck(frameId: number): void;
}

/**
 * Ids for the frames whose answers come back through peer dispatch — replication and
 * handoff pushes (their Acks), pulls (their PullReply) — and the way back for acks. Ids
 * never repeat across those components, so an Ack reaches the component that sent its frame
 * and no other; an ack nobody awaits (a push, a late ack) is dropped. Forwards are numbered
 * by the forwarder's own table; frames nobody answers carry their own counter or 0.
 *
 * A Replicate or Handoff frame with id NO_ACK asks for no Ack: most replication frames are
 * never awaited (only sync replication, drains and the lag probes wait), and an Ack is a
 * message each way — at low load as many as the frames themselves. A node of an older build
 * acks id 0 anyway; that ack is dropped here as unawaited.
 */
export const NO_ACK = 0;

export class FrameIds {
  private next = 1;
  private readonly awaiting = new Map<number, AckReceiver>();
  readonly stats = { unawaitedAcks: 0 };

  constructor(private readonly maxAwaitedAcks: number) {}

  take(): number {
    const id = this.next;
    this.next = id >= Number.MAX_SAFE_INTEGER ? 1 : id + 1;
    return id;
  }

  /** `receiver` gets the ack for frame `id`. False when maxAwaitedAcks acks are awaited already. */
  awaitAck(id: number, receiver: AckReceiver): boolean {
    if (this.awaiting.size >= this.maxAwaitedAcks) return false;
    this.awaiting.set(id, receiver);
    return true;
  }

  /** Stops waiting for `id` (its receiver gave up on it). */
  forget(id: number): void {
    this.awaiting.delete(id);
  }

  /** An Ack frame arrived: hand it to the component that awaits it. */
  deliverAck(id: number): void {
    const receiver = this.awaiting.get(id);
    if (receiver === undefined) {
      this.stats.unawaitedAcks++;
      return;
    }
    this.awaiting.delete(id);
    receiver.onAck(id);
  }
}
