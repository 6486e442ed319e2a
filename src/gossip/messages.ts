import type { Meta } from './types.js';

/**
 * Message types on the wire. APPEND-ONLY: never renumber or reuse a value;
 * receivers drop (and count) types they do not know, so new ones roll out safely.
 */
export const MessageType = {
  Ping: 1,
  PingReq: 2,
  Ack: 3,
  Nack: 4,
  Gossip: 5,
  Sync: 6,
  SyncReply: 7,
  SyncDigest: 8,
} as const;

/** Piggybacked state-update kinds. APPEND-ONLY like MessageType. */
export const UpdateKind = {
  Alive: 0,
  Suspect: 1,
  Dead: 2,
  Left: 3,
} as const;

/** Member states inside a push-pull record. APPEND-ONLY. */
export const StateCode = { alive: 0, suspect: 1, dead: 2, left: 3 } as const;

export interface AliveUpdate {
  readonly kind: 'alive';
  readonly nodeId: string;
  readonly generation: number;
  readonly incarnation: number;
  readonly address: string;
  readonly meta: Meta;
}

export interface AccusationUpdate {
  readonly kind: 'suspect' | 'dead';
  readonly nodeId: string;
  readonly generation: number;
  readonly incarnation: number;
  /** Node that raised the accusation: counts as one independent confirmation. */
  readonly from: string;
}

export interface LeftUpdate {
  readonly kind: 'left';
  readonly nodeId: string;
  readonly generation: number;
  readonly incarnation: number;
}

export type Update = AliveUpdate | AccusationUpdate | LeftUpdate;

/** A digest of a member's live view (digest.ts): two 32-bit lanes and the live count, self included. */
export interface StateDigest {
  readonly a: number;
  readonly b: number;
  readonly count: number;
}

/** One member in a push-pull full-state exchange. */
export interface MemberRecord {
  readonly nodeId: string;
  readonly address: string;
  readonly generation: number;
  readonly incarnation: number;
  readonly state: keyof typeof StateCode;
  readonly meta: Meta;
}

export type Message =
  | { readonly type: 'ping'; readonly from: string; readonly seq: number; readonly target: string; readonly updates: readonly Update[] }
  | {
      readonly type: 'ping-req';
      readonly from: string;
      readonly seq: number;
      readonly target: string;
      readonly targetAddress: string;
      readonly updates: readonly Update[];
    }
  | { readonly type: 'ack'; readonly from: string; readonly seq: number; readonly updates: readonly Update[] }
  | { readonly type: 'nack'; readonly from: string; readonly seq: number }
  | { readonly type: 'gossip'; readonly from: string; readonly updates: readonly Update[] }
  /** Push-pull request chunk; only the first chunk of a round asks for the peer's state back. */
  | { readonly type: 'sync'; readonly from: string; readonly wantsReply: boolean; readonly members: readonly MemberRecord[] }
  | { readonly type: 'sync-reply'; readonly from: string; readonly members: readonly MemberRecord[] }
  /** Push-pull opener: the sender's live-view digest; a receiver whose digest differs starts the full exchange. */
  | { readonly type: 'sync-digest'; readonly from: string; readonly digest: StateDigest };
