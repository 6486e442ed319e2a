import type { FrameIds } from '../wire/frame-ids.js';
import type { ForwardServer } from '../routing/forward-server.js';
import type { Forwarder } from '../routing/forwarder.js';
import type { Handoff } from '../state/handoff.js';
import type { Greetings } from './greetings.js';
import type { HotKeys } from '../sync/hot-keys.js';
import type { Leases } from '../lease/leases.js';
import type { Replicator } from '../state/replicator.js';
import type { PolicySync } from '../sync/policy-sync.js';
import type { FairShareSync } from '../sync/fair-share-sync.js';
import type { Reply } from '../transport/peer-transport.js';
import { decodeFrame } from '../wire/codec.js';
import { FrameType } from '../wire/frames.js';

export interface PeerDispatchComponents {
  ids: FrameIds;
  forwarder: Forwarder;
  forwardServer: ForwardServer;
  replicator: Replicator;
  handoff: Handoff;
  hotKeys: HotKeys;
  leases: Leases;
  policySync: PolicySync;
  fairShare: FairShareSync;
  greetings: Greetings;
}

/**
 * Every peer frame that arrives: decoded and validated, then handed to the protocol it
 * belongs to. It only dispatches; a malformed frame is counted and dropped.
 */
export class PeerDispatch {
  readonly stats = { malformedFrames: 0 };

  constructor(private readonly components: PeerDispatchComponents) {}

  onFrame(bytes: Uint8Array, reply: Reply, fromNodeId: string): void {
    const frame = decodeFrame(bytes);
    if (frame === undefined) {
      this.stats.malformedFrames++;
      return;
    }
    const c = this.components;
    switch (frame.type) {
      case FrameType.Forward:
        return c.forwardServer.serve(frame.id, frame.items, reply, fromNodeId);
      case FrameType.ForwardReply:
        return c.forwarder.handleReply(frame.id, frame.results);
      case FrameType.Replicate:
        return c.replicator.receive(frame.id, frame.entries, fromNodeId, reply);
      case FrameType.Ack:
        return c.ids.deliverAck(frame.id);
      case FrameType.Handoff:
        return c.handoff.receive(frame.id, frame.entries, fromNodeId, reply);
      case FrameType.Pull:
        return c.handoff.pulls.answerPull(frame.id, frame.action, frame.key, fromNodeId, reply);
      case FrameType.PullReply:
        return c.handoff.pulls.handlePullReply(frame.id, frame.entry);
      case FrameType.PullNamed:
        return c.handoff.pulls.handlePullNamed(frame.id, frame.handedTo);
      case FrameType.HandoffDone:
        return c.handoff.peerHandedOver(fromNodeId, frame.version);
      case FrameType.Greet:
        return c.greetings.receive(fromNodeId, frame.answer);
      case FrameType.GlobalHits:
        return c.hotKeys.receiveHits(frame.items);
      case FrameType.GlobalState:
        return c.hotKeys.receiveStates(frame.entries, fromNodeId);
      case FrameType.PolicyPull:
        return c.policySync.answerPull(frame.id, frame.digest, reply);
      case FrameType.PolicyDoc:
        return c.policySync.receive(frame.version, frame.digest, frame.text, fromNodeId);
      case FrameType.FairDemand:
        return c.fairShare.receiveDemand(frame.action, fromNodeId, frame.reports);
      case FrameType.FairShares:
        return c.fairShare.receiveShares(frame.action, fromNodeId, frame.levelPerWeight, frame.shares);
      case FrameType.LeaseAsk:
        return c.leases.receiveAsks(frame.asks, fromNodeId);
      case FrameType.LeaseGrant:
        return c.leases.receiveGrants(frame.grants, fromNodeId);
      case FrameType.LeaseReturn:
        return c.leases.receiveReturns(frame.returns, fromNodeId);
    }
  }
}
