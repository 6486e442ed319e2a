import type { ClusterView } from '../routing/cluster-view.js';
import type { PeerTransport } from '../transport/peer-transport.js';
import { encodeFrame } from '../wire/codec.js';
import { FrameType } from '../wire/frames.js';

/** A member answers one member's greeting at most this often (a peer that greets in a loop gets little). */
const ANSWER_INTERVAL_MS = 1_000;

export interface GreetingsComponents {
  view: ClusterView;
  transport: PeerTransport;
  now(): number;
}

/**
 * Opening the peer streams before a node owns keys, both ends. A stream opens on its first
 * frame, and on a busy cluster that took a few hundred ms — while forwards for the joining
 * node's keys waited behind it, and every caller whose batch held one of them. So a
 * joining node greets every member (opening its streams to them); each member answers
 * with a greeting of its own on its own stream (opening that one); the node turns active
 * once every member answered, or the wait's bound passed.
 */
export class Greetings {
  readonly stats = { greeted: 0, answered: 0 };
  private readonly answeredBy = new Set<string>();
  private readonly lastAnswerMs = new Map<string, number>();
  private waiting: (() => void) | undefined;

  constructor(private readonly components: GreetingsComponents) {}

  /** Greets every other member; settles once each answered, or after `timeoutMs`. Returns how many answered. */
  async greetAll(timeoutMs: number): Promise<number> {
    const { view, transport } = this.components;
    const members = view.otherMembers();
    this.answeredBy.clear();
    const ask = encodeFrame({ type: FrameType.Greet, id: 0, answer: false });
    const asked = new Set<string>();
    for (const [nodeId, address] of members) if (transport.send(address, ask)) asked.add(nodeId);
    this.stats.greeted += asked.size;
    if (asked.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(finish, timeoutMs);
        function finish(): void {
          clearTimeout(timer);
          resolve();
        }
        this.waiting = () => {
          if ([...asked].every((nodeId) => this.answeredBy.has(nodeId))) finish();
        };
      });
    }
    this.waiting = undefined;
    return [...asked].filter((nodeId) => this.answeredBy.has(nodeId)).length;
  }

  /** A greeting from `fromNodeId` (a member): answer one that asks, on our own stream; note one that answers. */
  receive(fromNodeId: string, answer: boolean): void {
    const { view, transport } = this.components;
    const address = view.addressOf(fromNodeId);
    if (address === undefined) return;
    if (answer) {
      this.answeredBy.add(fromNodeId);
      this.waiting?.();
      return;
    }
    const nowMs = this.components.now();
    if (nowMs - (this.lastAnswerMs.get(fromNodeId) ?? -Infinity) < ANSWER_INTERVAL_MS) return;
    this.lastAnswerMs.set(fromNodeId, nowMs);
    if (this.lastAnswerMs.size > 4 * view.otherMembers().length + 16) this.lastAnswerMs.clear();
    if (transport.send(address, encodeFrame({ type: FrameType.Greet, id: 0, answer: true }))) this.stats.answered++;
  }
}
