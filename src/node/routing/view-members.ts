import type { Membership } from '../../gossip/index.js';

/** Metadata every node publishes through gossip. */
export const META_GRPC = 'grpc';
export const META_STATE = 'state';
export const META_PROTOCOL = 'pv';
/** The node's HTTP address, when it serves HTTP (ringlimit status reads every member's metrics there). */
export const META_HTTP = 'http';
/** The ring (its version) for which the node has pushed every key state it held to the key's new owner: pull nothing more from it. */
export const META_HANDED = 'ho';

/** joining: not routed to until its view is complete; draining: handing its keys over. */
export type NodeState = 'joining' | 'active' | 'draining';

/** One node as a view sees it: where it answers, and whether it owns keys now. */
export interface ViewMember {
  nodeId: string;
  /** gRPC host:port. */
  address: string;
  /** Active: on the ring. Joining and draining nodes answer peers (handoff) but own nothing. */
  owns: boolean;
  /** The ring version it has handed over for (META_HANDED), if any. */
  handed?: string | undefined;
}

/** What a view is built from: gossip membership in a node, the Members RPC in a client. */
export interface MemberSource {
  current(): readonly ViewMember[];
}

/** A node's members as gossip sees them, with the gRPC address and state each publishes. */
export function gossipMembers(membership: Membership): MemberSource {
  return {
    current: () => {
      const list: ViewMember[] = [];
      for (const m of membership.members()) {
        const address = m.meta[META_GRPC];
        if (address !== undefined) list.push({ nodeId: m.nodeId, address, owns: m.meta[META_STATE] === 'active', handed: m.meta[META_HANDED] });
      }
      return list;
    },
  };
}
