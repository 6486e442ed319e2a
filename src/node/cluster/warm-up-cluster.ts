import { systemClock } from '../../common/clock.js';
import { RingLimitError } from '../../common/errors.js';
import { LatencyHistogram } from '../../common/latency.js';
import { LimiterStore } from '../../limiter/store.js';
import { ALGORITHMS, type RateLimitRequest, type Reservation } from '../../limiter/types.js';
import { ClusterView, routingHash, type ViewMember } from '../routing/cluster-view.js';
import { ForwardServer } from '../routing/forward-server.js';
import { OwnerDecision, resolveOnce } from '../routing/owner-decision.js';
import { RequestPath } from '../routing/request-path.js';
import { ClusterRouter } from '../routing/router.js';
import { Replicator } from '../state/replicator.js';
import type { PeerTransport, Reply } from '../transport/peer-transport.js';
import { decodeFrame, encodeFrame } from '../wire/codec.js';
import { FrameIds } from '../wire/frame-ids.js';
import { AdminOp, FrameType, type ForwardItem } from '../wire/frames.js';

/** Requests per message: a batch as a busy node sees one. */
const BATCH = 64;
/** Key sets the rounds take turns over, so the receiving stores keep inserting keys they have not seen. */
const KEY_SETS = 8;
/** Rounds after which the receivers start over with empty stores (a new member inserts most of what it receives). */
const FRESH_RECEIVERS_EVERY = 4 * KEY_SETS;
const SELF = 'warm-0';
const REPLICA = 'warm-1';
/** Candidate keys tried for each one the scratch member owns, at most (it owns about a third). */
const MAX_TRIES_PER_KEY = 16;
const MEMBERS: readonly ViewMember[] = [SELF, REPLICA, 'warm-2'].map((nodeId) => ({ nodeId, address: `${nodeId}:0`, owns: true }));

/** Frames between the scratch members, delivered synchronously: nothing leaves the process. */
class LoopbackTransport implements PeerTransport {
  constructor(private readonly deliver: (address: string, frame: Uint8Array) => void) {}
  send(address: string, frame: Uint8Array): boolean {
    this.deliver(address, frame);
    return true;
  }
  onFrame(): void {}
  onPeerDown(): void {}
  disconnect(): void {}
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const noReply: Reply = () => undefined;
/** A caller's request: a plain allow, or a reservation bounded by maxWaitMs. */
export interface WarmUpRequest {
  request: RateLimitRequest;
  maxWaitMs: number | undefined;
}

const warmUpOnly = (): never => {
  throw new RingLimitError('INTERNAL', 'the warm-up decides only keys its scratch member owns');
};

/** A receiving member: a store keyed as a node's, and the replication protocol's receiving end. */
interface Receiver {
  store: LimiterStore;
  replicator: Replicator;
}

/**
 * Three members of a scratch cluster inside this process, built from the node's own classes
 * (a ClusterView, the request path and router, the owner's decision, replication, the
 * forward server): the warm-up runs the paths a busy member runs — requests validated,
 * routed and decided; the decisions replicated to a replica that imports them, and merged by
 * an owner that hears them back; a peer's Forward frame served — on state no caller can
 * reach. decide() takes a caller's request to the scratch member (the node's warm-up sends
 * it its public API's traffic, src/node/warm-up.ts).
 */
export class WarmUpCluster {
  rounds = 0;
  /** What the rounds did, for tests: requests decided, entries each receiver imported, forwards served. */
  readonly counts = { answered: 0, replicated: 0, merged: 0, forwarded: 0 };
  /** Requests for keys the scratch member owns, plain allows and reservations (maxWaitMs), as callers send them. */
  get requests(): readonly WarmUpRequest[] {
    return this.asked;
  }
  private readonly asked: WarmUpRequest[] = [];
  private readonly view = this.viewOf(SELF);
  private readonly replicaView = this.viewOf(REPLICA);
  private readonly store = this.storeOf(4 * BATCH * KEY_SETS);
  private readonly replicator: Replicator;
  private readonly path: RequestPath;
  private readonly forwards: ForwardServer;
  /** The replica imports what the owner sends; the merger is an owner hearing its replica's copy. */
  private replica: Receiver;
  private merger: Receiver;
  private readonly forwardFrames: { id: number; items: ForwardItem[] }[] = [];
  private readonly forwardsAnswered: Reply = (bytes) => {
    const reply = decodeFrame(bytes);
    if (reply?.type === FrameType.ForwardReply) for (const result of reply.results) if (result.status === 0) this.counts.forwarded++;
  };

  constructor() {
    this.replica = this.receiver(this.replicaView);
    this.merger = this.receiver(this.view);
    this.replicator = new Replicator(
      { store: this.store, view: this.view, transport: new LoopbackTransport((address, frame) => this.delivered(address, frame)), clock: systemClock, ids: new FrameIds(64) },
      { selfId: SELF, replicas: 1, replicationDelayMs: 5, replicationMaxDelayMs: 50, replicationMinBatch: 8, maxBatchSize: 1_000, ackTimeoutMs: 1_000, resyncSlotsPerTurn: 1_000 },
    );
    const decision = new OwnerDecision({ store: this.store, replication: this.replicator }, { syncReplication: false });
    const router = new ClusterRouter({ view: this.view, decision, forwarder: { forward: warmUpOnly }, hotCopies: { decideFromCopy: () => undefined, ownerAnswered: () => undefined }, leases: undefined });
    this.path = new RequestPath({ store: this.store, latency: { local: new LatencyHistogram(), forwarded: new LatencyHistogram() } }, router);
    this.forwards = new ForwardServer({ clock: systemClock, view: this.view, decision, forwarder: { relay: warmUpOnly } });
    let key = 0;
    for (let set = 0; set < KEY_SETS; set++) {
      const items: ForwardItem[] = [];
      while (items.length < BATCH) {
        if (key >= MAX_TRIES_PER_KEY * BATCH * KEY_SETS) throw new RingLimitError('INTERNAL', 'the warm-up cluster found too few keys its scratch member owns');
        const request = this.request(set, key++);
        if (this.view.ownerOf(request.action ?? '', request.key) !== SELF) continue;
        this.asked.push({ request, maxWaitMs: items.length % 4 === 3 ? 10 : undefined });
        items.push(forwardItem(request, items.length + 1));
      }
      this.forwardFrames.push({ id: set + 1, items });
    }
  }

  /** A caller's request, decided by the scratch member (throws for a bad one, as a node's API does). */
  decide(request: RateLimitRequest, maxWaitMs: number | undefined): Reservation | Promise<Reservation> {
    const answer = this.path.decide(request, maxWaitMs);
    this.counts.answered++;
    return answer;
  }

  /** One round: a batch of requests decided here, the decisions replicated, a peer's forwards served. */
  round(): void {
    const set = this.rounds % KEY_SETS;
    for (let i = set * BATCH; i < (set + 1) * BATCH; i++) {
      const { request, maxWaitMs } = this.requests[i]!;
      this.decide(request, maxWaitMs);
    }
    this.replicator.flush();
    const forwards = this.forwardFrames[set]!;
    const frame = decodeFrame(encodeFrame({ type: FrameType.Forward, id: forwards.id, items: forwards.items }));
    if (frame?.type === FrameType.Forward) this.forwards.serve(frame.id, frame.items, this.forwardsAnswered, REPLICA);
    if (++this.rounds % FRESH_RECEIVERS_EVERY === 0) {
      this.close(false);
      this.replica = this.receiver(this.replicaView);
      this.merger = this.receiver(this.view);
    }
  }

  /** Stops the scratch replicators' timers; `all`: the sending one's too. */
  close(all = true): void {
    if (all) this.replicator.close();
    this.replica.replicator.close();
    this.merger.replicator.close();
  }

  /** A Replicate frame from the owner to a holder: the replica takes it; the merger (an owner) hears it back from that holder. */
  private delivered(address: string, bytes: Uint8Array): void {
    const frame = decodeFrame(bytes);
    if (frame?.type !== FrameType.Replicate) return;
    const { replica, merger, counts } = this;
    const [replicated, merged] = [replica.replicator.stats.entriesReceived, merger.replicator.stats.entriesReceived];
    replica.replicator.receive(frame.id, frame.entries, SELF, noReply);
    merger.replicator.receive(frame.id, frame.entries, address.slice(0, address.lastIndexOf(':')), noReply);
    counts.replicated += replica.replicator.stats.entriesReceived - replicated;
    counts.merged += merger.replicator.stats.entriesReceived - merged;
  }

  private receiver(view: ClusterView): Receiver {
    const store = this.storeOf(2 * BATCH * KEY_SETS);
    const replicator = new Replicator(
      { store, view, transport: new LoopbackTransport(() => undefined), clock: systemClock, ids: new FrameIds(64) },
      { selfId: view.selfId, replicas: 1, replicationDelayMs: 5, replicationMaxDelayMs: 50, replicationMinBatch: 8, maxBatchSize: 1_000, ackTimeoutMs: 1_000, resyncSlotsPerTurn: 1_000 },
    );
    return { store, replicator };
  }

  private viewOf(selfId: string): ClusterView {
    return new ClusterView({ members: { current: () => MEMBERS }, clock: systemClock }, { selfId, replicas: 1, maxHandedAwayKeys: 16, handoffWindowMs: 0 });
  }

  private storeOf(maxKeys: number): LimiterStore {
    return new LimiterStore(systemClock, { maxKeys, routingHash, trackChanges: true });
  }

  private request(set: number, i: number): RateLimitRequest {
    // Half the keys with room (allowed answers), half soon used up (refusals), as callers see both.
    return { key: `warm-${set}-${i}`, action: 'warm-up', limit: i % 2 === 0 ? 1_000_000 : 1 + (i % 50), windowMs: 1_000 + i, algorithm: ALGORITHMS[i % ALGORITHMS.length]! };
  }
}

function forwardItem(r: RateLimitRequest, id: number): ForwardItem {
  const p = resolveOnce(r);
  return { id, action: p.action, key: p.key, limit: p.limit, windowMs: p.windowMs, weight: 1, cost: 1, algorithm: p.algorithm, burst: 0, hops: 0, maxWaitMs: -1, global: false, op: AdminOp.Decide, remaining: 0, calendar: '', timeZone: '' };
}
