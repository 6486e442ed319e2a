import type { ErrorCode } from '../../common/errors.js';

/** Peer protocol version carried in every frame. A frame of another version is dropped. */
export const PEER_PROTOCOL_VERSION = 1;

/** Frame types. Append-only: never renumber. */
export const enum FrameType {
  Forward = 1,
  ForwardReply = 2,
  Replicate = 3,
  Ack = 4,
  Handoff = 5,
  Pull = 6,
  PullReply = 7,
  /** Hot-key mode: hits a non-owner admitted from its copy, for the owner to apply. */
  GlobalHits = 8,
  /** Hot-key mode: the owner's authoritative states, broadcast to every other node. */
  GlobalState = 9,
  /** Policies: "send me the document with this digest" (advertised in the sender's gossip). */
  PolicyPull = 10,
  /** Policies: a document (canonical JSON text) with its version and digest: pushed on a change, or a PolicyPull's answer. */
  PolicyDoc = 11,
  /** Fair share: a node's measured demand per user of an action, to the action's coordinator. */
  FairDemand = 12,
  /** Fair share: the coordinator's shares for one node's users of an action, and its share per unit of weight for others. */
  FairShares = 13,
  /** Handoff: the sender has pushed every state it held that a member needs for ring `version` (acked): pull nothing more from it. */
  HandoffDone = 14,
  /** A joining node opens its streams before it owns keys: `answer` false asks the receiver to open its own stream back and answer on it. */
  Greet = 15,
  /** Leases: a holder asks a key's owner for slices of keys' allowances (one frame per owner and event-loop turn). */
  LeaseAsk = 16,
  /** Leases: the owner's answers to a LeaseAsk's asks (0 units: refused), with the window the units were taken from. */
  LeaseGrant = 17,
  /** Leases: a holder gives back units it never used, each of the window it was taken from (one frame per owner and event-loop turn). */
  LeaseReturn = 18,
  /**
   * Handoff: sent just before a PullReply (same id) when the answering node no longer decides
   * the key: the node that does, in its view. The puller routes the key there. A node of an
   * earlier version drops it as of an unknown type and reads the PullReply as before.
   */
  PullNamed = 19,
}

/** Error codes on the wire. Append-only. */
export const WIRE_ERROR_CODES: readonly ErrorCode[] = [
  'INTERNAL',
  'INVALID_ARGUMENT',
  'RESOURCE_EXHAUSTED',
  'UNAVAILABLE',
  'DEADLINE_EXCEEDED',
  'ABORTED',
  'FAILED_PRECONDITION',
];

/** A request forwarded to its owner. Fields mirror RateLimitRequest; 0 means "not given" where noted. */
export interface ForwardItem {
  id: number;
  action: string;
  key: string;
  limit: number;
  windowMs: number;
  weight: number;
  cost: number;
  /** AlgorithmId. */
  algorithm: number;
  /** 0: none. */
  burst: number;
  /** How many nodes have forwarded it already. */
  hops: number;
  /** -1: a plain allow; otherwise a reservation's bound. */
  maxWaitMs: number;
  /** Hot-key mode (on the wire only when true). In GlobalHits, `cost` is the hits to apply. */
  global: boolean;
  /** What the owner does: a decision, or an operator's Inspect or Set (AdminOp; on the wire only when not Decide). */
  op: AdminOp;
  /** Set: the remaining to put; -1 gives the full allowance (Reset). */
  remaining: number;
  /** A calendar window's unit ('' for a window of windowMs; then on the wire only when set). */
  calendar: string;
  /** The calendar's IANA time zone. */
  timeZone: string;
}

/** An operator's operations on a key, carried to its owner like a decision. Append-only. */
export const enum AdminOp {
  Decide = 0,
  Inspect = 1,
  Set = 2,
}

export interface ForwardResult {
  id: number;
  /** 0 = ok, otherwise 1 + index in WIRE_ERROR_CODES. */
  status: number;
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Relative to the owner's now: the receiver adds its own clock, so skew never leaks. */
  resetInMs: number;
  retryAfterMs: number;
  waitMs: number;
  message: string;
  field: string;
}

/** One key's state with every time expressed relative to the sender's now. */
export interface WireEntry {
  action: string;
  key: string;
  algorithm: number;
  cells: [number, number, number, number];
}

export type Frame =
  | { type: FrameType.Forward; id: number; items: ForwardItem[] }
  | { type: FrameType.ForwardReply; id: number; results: ForwardResult[] }
  | { type: FrameType.Replicate; id: number; entries: WireEntry[] }
  | { type: FrameType.Ack; id: number }
  | { type: FrameType.Handoff; id: number; entries: WireEntry[] }
  | { type: FrameType.Pull; id: number; action: string; key: string }
  | { type: FrameType.PullReply; id: number; entry: WireEntry | null }
  | { type: FrameType.PullNamed; id: number; handedTo: string }
  | { type: FrameType.GlobalHits; id: number; items: ForwardItem[] }
  | { type: FrameType.GlobalState; id: number; entries: WireEntry[] }
  | { type: FrameType.PolicyPull; id: number; digest: string }
  | { type: FrameType.PolicyDoc; id: number; version: number; digest: string; text: string }
  | { type: FrameType.FairDemand; id: number; action: string; reports: DemandRow[] }
  | { type: FrameType.FairShares; id: number; action: string; levelPerWeight: number; shares: [string, number][] }
  | { type: FrameType.HandoffDone; id: number; version: string }
  | { type: FrameType.Greet; id: number; answer: boolean }
  | { type: FrameType.LeaseAsk; id: number; asks: LeaseAskBody[] }
  | { type: FrameType.LeaseGrant; id: number; grants: LeaseGrantBody[] }
  | { type: FrameType.LeaseReturn; id: number; returns: LeaseReturnBody[] };

/** One return of a LeaseReturn frame: `units` never used, of (action, key)'s window starting at `epoch` (the granting owner's clock). */
export interface LeaseReturnBody {
  action: string;
  key: string;
  units: number;
  epoch: number;
}

/** One ask of a LeaseAsk frame: the request (`item.id`: the ask's id, `item.cost`: the units wanted) and the holder's rate for the key, per s. */
export interface LeaseAskBody {
  item: ForwardItem;
  ratePerSec: number;
}

/** One grant of a LeaseGrant frame: `units` taken out of (action, key)'s window starting at `epoch` (the owner's clock), usable for `expiresInMs` from the ask's sending. */
export interface LeaseGrantBody {
  /** The ask it answers. */
  id: number;
  action: string;
  key: string;
  units: number;
  expiresInMs: number;
  /** When the key is back to its full allowance, relative to the owner's now. */
  resetInMs: number;
  epoch: number;
}

/** One user's demand on the wire: user, weight, rate and own limit (units per ms). */
export type DemandRow = [string, number, number, number];
