import type { Clock } from '../common/clock.js';
import type { Member, Membership } from '../gossip/index.js';
import { Ring } from '../ring/index.js';

/** Metadata every node publishes through gossip. */
export const META_GRPC = 'grpc';
export const META_STATE = 'state';
export const META_PROTOCOL = 'pv';

/** joining: not routed to until its view is complete; draining: handing its keys over. */
export type NodeState = 'joining' | 'active' | 'draining';

/** What the ring places for (action, key): both parts, so one user's actions spread over nodes. */
export function routingKey(action: string, key: string): string {
  return `${action}\u0000${key}`;
}

/**
 * The node's view of who owns what: an immutable Ring rebuilt (never mutated) whenever
 * membership changes, plus the ring before the last change, for handoff.
 */
export class ClusterView {
  ring: Ring;
  previous: Ring;
  /** When the ring last changed (clock ms). */
  changedAtMs = -Infinity;
  private addresses = new Map<string, string>();
  private readonly listeners: ((view: ClusterView) => void)[] = [];

  constructor(
    readonly selfId: string,
    private readonly membership: Membership,
    private readonly clock: Clock,
  ) {
    this.ring = this.build();
    this.previous = this.ring;
    const rebuild = () => this.refresh();
    membership.on('join', rebuild);
    membership.on('leave', rebuild);
    membership.on('fail', rebuild);
    membership.on('update', rebuild);
  }

  onChange(listener: (view: ClusterView) => void): void {
    this.listeners.push(listener);
  }

  /** gRPC address of a member, or undefined when it is not (or no longer) known. */
  addressOf(nodeId: string): string | undefined {
    return this.addresses.get(nodeId);
  }

  /** Rebuilds from membership; swaps the ring only when the owner set changed. */
  refresh(): void {
    const next = this.build();
    const same = next.size === this.ring.size && next.members.every((m) => this.ring.has(m.nodeId));
    if (same) return;
    this.previous = this.ring;
    this.ring = next;
    this.changedAtMs = this.clock.now();
    for (const listener of this.listeners) listener(this);
  }

  private build(): Ring {
    const owners: Member[] = [];
    const addresses = new Map<string, string>();
    for (const m of this.membership.members()) {
      const grpc = m.meta[META_GRPC];
      if (grpc === undefined) continue;
      addresses.set(m.nodeId, grpc);
      // Joining and draining nodes answer peers (handoff) but own nothing yet / any more.
      if (m.meta[META_STATE] === 'active') owners.push(m);
    }
    this.addresses = addresses;
    return new Ring(owners.map((m) => ({ nodeId: m.nodeId })));
  }
}
