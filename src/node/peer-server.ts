import type { Clock } from '../common/clock.js';
import type { LimiterStore } from '../limiter/store.js';
import { ALGORITHMS, type AlgorithmId, type RateLimitRequest, type Reservation } from '../limiter/types.js';
import { newResolvedParams, resolveRequest } from '../limiter/validate.js';
import { STATE_STRIDE } from '../limiter/algorithms/index.js';
import { routingKey, type ClusterView } from './cluster-view.js';
import { errorResult, okResult } from './decisions.js';
import type { Forwarder, PendingForward } from './forwarder.js';
import type { Handoff } from './handoff.js';
import type { Replicator } from './replicator.js';
import { fromWireEntry } from './state-wire.js';
import type { Reply } from './transport/peer-transport.js';
import { decodeFrame, encodeFrame } from './wire/codec.js';
import { FrameType, type ForwardItem, type ForwardResult, type WireEntry } from './wire/frames.js';

/** A forwarded request is relayed at most once more; after that it is decided where it lands. */
export const MAX_HOPS = 1;

export interface PeerCounters {
  received: number;
  relayed: number;
  decidedAsFallback: number;
  malformedFrames: number;
}

export interface PeerServerDeps {
  nodeId: string;
  clock: Clock;
  store: LimiterStore;
  view: ClusterView;
  forwarder: Forwarder;
  replicator: Replicator;
  handoff: Handoff;
  syncReplication: boolean;
  /** Shared with the node's stats. */
  counters: PeerCounters;
  decideSync(request: RateLimitRequest, maxWaitMs: number): Reservation;
  decideAsync(request: RateLimitRequest, maxWaitMs: number): Promise<Reservation>;
}

/** Answers the frames peers send: forwards to decide, state to store, pulls to answer. */
export class PeerServer {
  private readonly params = newResolvedParams();
  private readonly cells = new Float64Array(STATE_STRIDE);

  constructor(private readonly d: PeerServerDeps) {}

  onFrame(bytes: Uint8Array, reply: Reply, fromNodeId: string): void {
    const frame = decodeFrame(bytes);
    const d = this.d;
    if (frame === undefined) {
      d.counters.malformedFrames++;
      return;
    }
    const nowMs = d.clock.now();
    switch (frame.type) {
      case FrameType.Forward:
        this.serveForwards(frame.id, frame.items, reply);
        return;
      case FrameType.ForwardReply:
        d.forwarder.handleReply(frame.results, nowMs);
        return;
      case FrameType.Replicate:
        for (const entry of frame.entries) {
          // A replica takes the owner's word, unless it believes it is the owner itself.
          if (d.view.ring.owner(routingKey(entry.action, entry.key)) === d.nodeId) d.handoff.receive([entry]);
          else this.importReplica(entry, nowMs);
        }
        reply(encodeFrame({ type: FrameType.Ack, id: frame.id }));
        return;
      case FrameType.Handoff:
        d.handoff.receive(frame.entries);
        reply(encodeFrame({ type: FrameType.Ack, id: frame.id }));
        return;
      case FrameType.Ack:
        d.replicator.handleAck(frame.id);
        return;
      case FrameType.Pull:
        reply(encodeFrame({ type: FrameType.PullReply, id: frame.id, entry: d.handoff.answerPull(frame.action, frame.key, fromNodeId) }));
        return;
      case FrameType.PullReply:
        d.handoff.handlePullReply(frame.id, frame.entry);
        return;
    }
  }

  private importReplica(entry: WireEntry, nowMs: number): void {
    const cells = fromWireEntry(entry, nowMs, this.cells);
    this.d.store.importEntry(entry.action, entry.key, entry.algorithm as AlgorithmId, cells, 0, 'replica');
  }

  /** Decides what it owns at once (one reply frame); relays, pulls and sync replication answer later, item by item. */
  private serveForwards(frameId: number, items: ForwardItem[], reply: Reply): void {
    const d = this.d;
    const immediate: ForwardResult[] = [];
    for (const item of items) {
      d.counters.received++;
      const request: RateLimitRequest = {
        key: item.key,
        action: item.action,
        limit: item.limit,
        windowMs: item.windowMs,
        weight: item.weight,
        cost: item.cost,
        algorithm: ALGORITHMS[item.algorithm]!,
        ...(item.burst > 0 ? { burst: item.burst } : {}),
      };
      let p;
      try {
        p = resolveRequest(request, this.params);
      } catch (error) {
        immediate.push(errorResult(item.id, error));
        continue;
      }
      const owner = d.handoff.newOwnerOf(p.action, p.key) ?? d.view.ring.owner(routingKey(p.action, p.key)) ?? d.nodeId;
      if (owner !== d.nodeId && item.hops < MAX_HOPS) {
        d.counters.relayed++;
        const relayed: PendingForward = {
          item: { ...item, hops: item.hops + 1 },
          request,
          candidates: [owner],
          attempt: 0,
          address: '',
          deadlineMs: 0,
          resolve: (r) => this.answer(reply, frameId, okResult(item.id, r, d.clock.now())),
          reject: (e) => this.answer(reply, frameId, errorResult(item.id, e)),
        };
        d.forwarder.relay(relayed);
        continue;
      }
      if (owner !== d.nodeId) d.counters.decidedAsFallback++;
      const pull = d.handoff.pullIfNeeded(p.action, p.key);
      if (pull !== undefined || d.syncReplication) {
        (pull ?? Promise.resolve())
          .then(() => d.decideAsync(request, item.maxWaitMs))
          .then(
            (r) => this.answer(reply, frameId, okResult(item.id, r, d.clock.now())),
            (e: unknown) => this.answer(reply, frameId, errorResult(item.id, e)),
          );
        continue;
      }
      try {
        immediate.push(okResult(item.id, d.decideSync(request, item.maxWaitMs), d.clock.now()));
      } catch (error) {
        immediate.push(errorResult(item.id, error));
      }
    }
    if (immediate.length > 0) reply(encodeFrame({ type: FrameType.ForwardReply, id: frameId, results: immediate }));
  }

  private answer(reply: Reply, frameId: number, result: ForwardResult): void {
    reply(encodeFrame({ type: FrameType.ForwardReply, id: frameId, results: [result] }));
  }
}
