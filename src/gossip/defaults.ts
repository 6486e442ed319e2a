import { invalidArgument } from '../common/errors.js';

/** Protocol timings. One preset per environment; every value is in the unit its name ends with. */
export interface SwimTimings {
  /** Time between probes of the next member in the shuffled round-robin order. */
  readonly probeIntervalMs: number;
  /** Wait for a direct ack before asking `indirectChecks` members to probe on our behalf. */
  readonly probeTimeoutMs: number;
  /** k in SWIM: members asked to ping-req a target that missed its direct ack. */
  readonly indirectChecks: number;
  /** Suspicion timeout floor (Lifeguard min), scaled by max(1, log10(members)). */
  readonly suspicionMinMs: number;
  /** Suspicion starts at min * this and shrinks towards min as confirmations arrive. */
  readonly suspicionMaxMultiplier: number;
  /** Independent confirmations that drive the suspicion timeout down to its floor. */
  readonly suspicionConfirmations: number;
  /** Each update is piggybacked retransmitMultiplier * ceil(log10(members + 1)) times. */
  readonly retransmitMultiplier: number;
  /** How often queued updates are sent to `gossipFanout` random members even without probes. */
  readonly gossipIntervalMs: number;
  readonly gossipFanout: number;
  /** Full-state anti-entropy sync with one random member (recently failed ones included). */
  readonly pushPullIntervalMs: number;
  /** Lifeguard local-health ceiling: probe interval and timeout scale by (score + 1), score < max. */
  readonly awarenessMax: number;
  /** Failed/left members are remembered this long (stale gossip cannot revive them; partitions can heal). */
  readonly deadRetentionMs: number;
  /** How long a graceful stop keeps retransmitting its leave announcement. */
  readonly leavePropagateMs: number;
  /** join() gives up when no seed answered within this time. */
  readonly joinTimeoutMs: number;
  readonly joinBackoffInitialMs: number;
  readonly joinBackoffMaxMs: number;
}

/** Size and count bounds; each is enforced where data enters. */
export interface SwimLimits {
  /** UDP payload ceiling including header and MAC: below a 1500-byte Ethernet MTU. */
  readonly maxPacketBytes: number;
  /** Encoded size ceiling of one node's metadata; updateMeta() throws beyond it. */
  readonly maxMetaBytes: number;
  readonly maxMetaEntries: number;
  readonly maxNodeIdChars: number;
  /** Members (live and remembered) this node tracks; extra joiners are dropped and counted. */
  readonly maxMembers: number;
  /** Pending piggyback updates; the most-retransmitted are evicted first. */
  readonly maxBroadcasts: number;
  /** Outstanding probes and ping-req relays. */
  readonly maxPendingProbes: number;
  /** Push-pull answers per second: full state is bigger than a request, so cap amplification. */
  readonly maxSyncRepliesPerSecond: number;
  readonly maxSeeds: number;
  /** Upper bound on join() rounds besides its deadline. */
  readonly maxJoinAttempts: number;
  /**
   * News about a live member of the generation we know that raises its incarnation by more
   * than this is implausible (incarnations grow by refutations and metadata changes, a few a
   * second at most) and dropped: one forged packet cannot push a member to 2^53 − 1, where it
   * could never refute.
   */
  readonly maxIncarnationJump: number;
  /**
   * A generation (a boot's clock in ms) further than this ahead of our clock is implausible
   * and dropped: a forged generation near 2^53 would leave its member nothing newer to refute with.
   */
  readonly maxGenerationAheadMs: number;
  /**
   * Members never proven by a direct ack that one source (a host; on loopback a host and
   * port) may teach us while it is not itself a proven member: a flood of invented members
   * from a stranger fills at most this many slots. Seeds that answer our join are proven.
   */
  readonly maxUnprovenMembersPerSource: number;
  /**
   * Without a cluster key: new members that no member told us of (a stranger's news, a
   * newcomer introducing itself) are held apart from the member table, at most this many,
   * until they answer a ping from their own address (candidates.ts). A flood of invented
   * members from any number of sources fills this, never the table.
   */
  readonly maxCandidates: number;
  /** A candidate not confirmed within this is forgotten. */
  readonly candidateTtlMs: number;
}

export type PresetName = 'lan' | 'test';

export const defaults = {
  preset: 'lan' as PresetName,
  bindHost: '127.0.0.1',
  port: 0,
  presets: {
    lan: {
      probeIntervalMs: 120, // ~8 small pings/s per node; the first probe of a dead member dominates detection time
      probeTimeoutMs: 60, // LAN RTT is well under 1 ms; the rest absorbs GC and scheduling jitter
      indirectChecks: 3, // as memberlist: one healthy relay is enough to clear a target
      suspicionMinMs: 400, // > a 200 ms stall plus refutation round trip
      suspicionMaxMultiplier: 3, // a lone accuser waits 1.2 s; two confirmations cut it to 0.4 s
      suspicionConfirmations: 2, // memberlist uses SuspicionMult - 2 = 2
      retransmitMultiplier: 4, // memberlist default
      gossipIntervalMs: 100, // updates spread in a few hops without waiting for probes
      gossipFanout: 3,
      pushPullIntervalMs: 2_000, // anti-entropy with a random member, dead ones included: a healed partition merges within a few seconds (target 5 s)
      awarenessMax: 8, // memberlist AwarenessMaxMultiplier
      deadRetentionMs: 60_000,
      leavePropagateMs: 300,
      joinTimeoutMs: 10_000,
      joinBackoffInitialMs: 100,
      joinBackoffMaxMs: 1_000,
    },
    test: {
      probeIntervalMs: 100, // everything ~2x faster than lan so simulated tests stay short
      probeTimeoutMs: 50,
      indirectChecks: 3,
      suspicionMinMs: 200,
      suspicionMaxMultiplier: 3,
      suspicionConfirmations: 2,
      retransmitMultiplier: 4,
      gossipIntervalMs: 50,
      gossipFanout: 3,
      pushPullIntervalMs: 500, // frequent anti-entropy so partition tests heal quickly
      awarenessMax: 8,
      deadRetentionMs: 10_000,
      leavePropagateMs: 150,
      joinTimeoutMs: 5_000,
      joinBackoffInitialMs: 50,
      joinBackoffMaxMs: 500,
    },
  } satisfies Record<PresetName, SwimTimings>,
  limits: {
    maxPacketBytes: 1400,
    maxMetaBytes: 512,
    maxMetaEntries: 32,
    maxNodeIdChars: 64,
    maxMembers: 4096,
    maxBroadcasts: 512,
    maxPendingProbes: 256,
    maxSyncRepliesPerSecond: 50,
    maxSeeds: 64,
    maxJoinAttempts: 1_000,
    maxIncarnationJump: 10_000, // ~40 min of metadata changes at 4 a second (adaptive load), missed by a receiver that still holds the member live
    maxGenerationAheadMs: 3_600_000, // far beyond NTP skew; a node whose clock runs an hour ahead is refused (counted) until it is fixed
    maxUnprovenMembersPerSource: 64, // a stranger's news of new members; members' own news (once probed) and a seed's answer are not capped
    maxCandidates: 256, // 1/16 of maxMembers; a newcomer introducing itself is pinged at once and confirmed in a round trip, so few wait
    candidateTtlMs: 10_000, // those told of by strangers are pinged one a gossip round (10 a second on the LAN preset): most of a flood's expire unpinged
  } satisfies SwimLimits,
};

function requireInt(section: string, name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalidArgument(`${section}.${name}`, `must be an integer in [${min}, ${max}], got ${String(value)}`);
  }
}

export function resolveTimings(preset: PresetName | undefined, overrides: Partial<SwimTimings> | undefined): SwimTimings {
  const name = preset ?? defaults.preset;
  const base: SwimTimings | undefined = Object.hasOwn(defaults.presets, name) ? defaults.presets[name] : undefined;
  if (base === undefined) {
    throw invalidArgument('preset', `must be one of ${Object.keys(defaults.presets).join(', ')}, got ${String(name)}`);
  }
  const t: SwimTimings = { ...base, ...overrides };
  const ms = (key: keyof SwimTimings, min: number): void => requireInt('timings', key, t[key], min, 3_600_000);
  ms('probeIntervalMs', 1);
  ms('probeTimeoutMs', 1);
  ms('suspicionMinMs', 1);
  ms('gossipIntervalMs', 1);
  ms('pushPullIntervalMs', 1);
  ms('deadRetentionMs', 0);
  ms('leavePropagateMs', 0);
  ms('joinTimeoutMs', 0);
  ms('joinBackoffInitialMs', 1);
  ms('joinBackoffMaxMs', 1);
  requireInt('timings', 'indirectChecks', t.indirectChecks, 0, 16);
  requireInt('timings', 'suspicionMaxMultiplier', t.suspicionMaxMultiplier, 1, 100);
  requireInt('timings', 'suspicionConfirmations', t.suspicionConfirmations, 0, 16);
  requireInt('timings', 'retransmitMultiplier', t.retransmitMultiplier, 1, 32);
  requireInt('timings', 'gossipFanout', t.gossipFanout, 0, 32);
  requireInt('timings', 'awarenessMax', t.awarenessMax, 1, 64);
  if (t.probeTimeoutMs >= t.probeIntervalMs) {
    throw invalidArgument('timings.probeTimeoutMs', `must be below probeIntervalMs (${t.probeIntervalMs}), got ${t.probeTimeoutMs}`);
  }
  return t;
}

export function resolveLimits(overrides: Partial<SwimLimits> | undefined): SwimLimits {
  const l: SwimLimits = { ...defaults.limits, ...overrides };
  requireInt('limits', 'maxPacketBytes', l.maxPacketBytes, 512, 65_507);
  requireInt('limits', 'maxMetaBytes', l.maxMetaBytes, 16, Math.floor(l.maxPacketBytes / 2));
  requireInt('limits', 'maxMetaEntries', l.maxMetaEntries, 1, 1_000);
  requireInt('limits', 'maxNodeIdChars', l.maxNodeIdChars, 1, 128);
  requireInt('limits', 'maxMembers', l.maxMembers, 1, 100_000);
  requireInt('limits', 'maxBroadcasts', l.maxBroadcasts, 1, 100_000);
  requireInt('limits', 'maxPendingProbes', l.maxPendingProbes, 1, 100_000);
  requireInt('limits', 'maxSyncRepliesPerSecond', l.maxSyncRepliesPerSecond, 1, 100_000);
  requireInt('limits', 'maxSeeds', l.maxSeeds, 1, 10_000);
  requireInt('limits', 'maxJoinAttempts', l.maxJoinAttempts, 1, 1_000_000);
  requireInt('limits', 'maxIncarnationJump', l.maxIncarnationJump, 1, 1_000_000_000);
  requireInt('limits', 'maxGenerationAheadMs', l.maxGenerationAheadMs, 1_000, 365 * 86_400_000);
  requireInt('limits', 'maxUnprovenMembersPerSource', l.maxUnprovenMembersPerSource, 1, 100_000);
  requireInt('limits', 'maxCandidates', l.maxCandidates, 1, 100_000);
  requireInt('limits', 'candidateTtlMs', l.candidateTtlMs, 100, 3_600_000);
  return l;
}
