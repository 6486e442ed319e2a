import type { Clock } from '../../common/clock.js';
import { RingLimitError } from '../../common/errors.js';
import type { Reservation } from '../../limiter/types.js';
import { HERE, NO_RING, type ClusterView } from './cluster-view.js';
import { noRingYet } from './router.js';
import { errorResult, okResult, requestOf } from './forward-codec.js';
import type { Forwarder, PendingForward } from './forwarder.js';
import { resolveOnce, type OwnerDecision, type ResolvedRequest } from './owner-decision.js';
import type { Reply } from '../transport/peer-transport.js';
import { encodeFrame } from '../wire/codec.js';
import { AdminOp, FrameType, type ForwardItem, type ForwardResult } from '../wire/frames.js';

/** A forwarded request is relayed at most once more; after that it is decided where it lands. */
export const MAX_HOPS = 1;
/**
 * ...unless the node it lands on holds no state for the key: deciding there would start
 * from a fresh state (a draining node reached through a peer whose view lags, found by
 * the chaos harness in rolling restarts). Then it is relayed once more, to the owner in
 * this node's view, and decided wherever it lands after that.
 */
export const MAX_HOPS_WITHOUT_STATE = 2;

export interface ForwardServerComponents {
  clock: Clock;
  view: ClusterView;
  decision: OwnerDecision;
  /** Relays a forward this node does not own to the owner it knows. */
  forwarder: Pick<Forwarder, 'relay'>;
}

export interface ForwardServerStats {
  /** Forwards received from peers. */
  received: number;
  /** Forwards passed on to the owner in this node's view (one hop at most). */
  relayed: number;
  /** Forwards decided here although another node owns the key (it had been relayed once already). */
  decidedAsFallback: number;
  /** Keys a forward brought back from the node they had been handed to: the stale mark was dropped (see serve). */
  marksReleased: number;
}

/**
 * The receiving end of forwarding: each item of a Forward frame is validated like a local
 * call (a peer's frame is not trusted), then relayed to the owner this node knows, or
 * decided here. What is decided at once goes back in one ForwardReply frame with the
 * frame's id (sent even when empty: it tells the sender the frame was processed); relays,
 * pulls and sync replication answer later, item by item, with id 0.
 */
export class ForwardServer {
  readonly stats: ForwardServerStats = { received: 0, relayed: 0, decidedAsFallback: 0, marksReleased: 0 };
  /** placement()'s answer, reused. */
  private readonly places: string[] = [];

  constructor(private readonly components: ForwardServerComponents) {}

  /** The items of a Forward frame from `from` (a member's id; '' when unknown). */
  serve(frameId: number, items: ForwardItem[], reply: Reply, from = ''): void {
    const { view, decision } = this.components;
    const immediate: ForwardResult[] = [];
    for (const item of items) {
      this.stats.received++;
      let p: ResolvedRequest;
      try {
        p = resolveOnce(requestOf(item));
      } catch (error) {
        immediate.push(errorResult(item.id, error));
        continue;
      }
      let places = view.placement(p.action, p.key, this.places);
      // Sent by the node this one handed the key to on its pull: that node routes it here now,
      // so the mark is stale. Kept, the two would route the key to each other and each decide
      // it where it lands (the hop limit): two counts. Routed by the ring from here on.
      if (places !== HERE && places !== NO_RING && from !== '' && this.places[0] === from && view.releaseHandedAway(p.action, p.key, from)) {
        this.stats.marksReleased++;
        places = view.placement(p.action, p.key, this.places);
      }
      if (places === NO_RING) {
        immediate.push(errorResult(item.id, noRingYet()));
        continue;
      }
      if (places !== HERE) {
        if (item.hops < MAX_HOPS || (item.hops < MAX_HOPS_WITHOUT_STATE && !decision.holds(p.action, p.key))) {
          this.relay(item, p, this.places[0]!, reply);
          continue;
        }
        if (item.op !== AdminOp.Decide) {
          // An operator's operation belongs to the owner's state: not made on a stand-in.
          immediate.push(errorResult(item.id, new RingLimitError('UNAVAILABLE', `this node does not own ${p.action}/${p.key} and cannot reach its owner`)));
          continue;
        }
        this.stats.decidedAsFallback++;
      }
      let answer: Reservation | Promise<Reservation>;
      try {
        answer = item.op === AdminOp.Decide ? decision.decide(p, item.maxWaitMs) : decision.admin(p, item.op, item.remaining);
      } catch (error) {
        immediate.push(errorResult(item.id, error));
        continue;
      }
      if (answer instanceof Promise) {
        answer.then(
          (r) => this.answer(reply, okResult(item.id, r, this.components.clock.now())),
          (e: unknown) => this.answer(reply, errorResult(item.id, e)),
        );
      } else {
        immediate.push(okResult(item.id, answer, this.components.clock.now()));
      }
    }
    // Always, even empty: a reply with the frame's id tells the sender the frame was processed.
    reply(encodeFrame({ type: FrameType.ForwardReply, id: frameId, results: immediate }));
  }

  private relay(item: ForwardItem, p: ResolvedRequest, owner: string, reply: Reply): void {
    this.stats.relayed++;
    const relayed: PendingForward = {
      id: 0,
      item: { ...item, hops: item.hops + 1 },
      request: p,
      candidates: [owner],
      attempt: 0,
      address: '',
      deadlineMs: 0,
      resolve: (r) => this.answer(reply, okResult(item.id, r, this.components.clock.now())),
      reject: (e) => this.answer(reply, errorResult(item.id, e)),
    };
    this.components.forwarder.relay(relayed);
  }

  /** A later answer (relay, pull, sync replication): id 0, so it does not count as processing a frame again. */
  private answer(reply: Reply, result: ForwardResult): void {
    reply(encodeFrame({ type: FrameType.ForwardReply, id: 0, results: [result] }));
  }
}
