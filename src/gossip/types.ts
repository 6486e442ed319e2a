/** Where a member stands, as this node currently believes. */
export type MemberState = 'alive' | 'suspect' | 'dead' | 'left';

/** Small string map a node publishes about itself (gRPC address, lifecycle state, protocol version...). */
export type Meta = Readonly<Record<string, string>>;

export interface Member {
  /** Stable identity chosen by the operator (or random per process when not given). */
  readonly nodeId: string;
  /** host:port of the member's gossip socket. */
  readonly address: string;
  /** Per-boot number: a restarted node has a higher generation, so its new record wins. */
  readonly generation: number;
  /** Bumped by the member itself to refute suspicion or publish new metadata. */
  readonly incarnation: number;
  readonly meta: Meta;
  readonly state: MemberState;
}

export interface MembershipEvents {
  /** A member became reachable: new, back after fail/leave, or restarted (new generation, even if still listed). */
  join: (member: Member) => void;
  /** A member announced a graceful leave. */
  leave: (member: Member) => void;
  /** A member was declared failed (suspicion timed out). */
  fail: (member: Member) => void;
  /** A live member changed: metadata, address, or alive <-> suspect. */
  update: (member: Member) => void;
}

export type MembershipEventName = keyof MembershipEvents;

export interface StopOptions {
  /** Announce a leave before closing (default true). False is a crash-like stop. */
  readonly graceful?: boolean;
}

/** The view of cluster membership the rest of ringlimit depends on. */
export interface Membership {
  /** This node's own record (fresh snapshot on every read). */
  readonly self: Member;
  start(): Promise<void>;
  stop(options?: StopOptions): Promise<void>;
  /** Live members (alive or suspect), including self, sorted by nodeId. */
  members(): Member[];
  /** Replace this node's metadata; throws INVALID_ARGUMENT when it is too large or malformed. */
  updateMeta(meta: Meta): void;
  /** Subscribe; returns an unsubscribe function. */
  on<E extends MembershipEventName>(event: E, listener: MembershipEvents[E]): () => void;
  off<E extends MembershipEventName>(event: E, listener: MembershipEvents[E]): void;
}

export function isLive(state: MemberState): boolean {
  return state === 'alive' || state === 'suspect';
}
