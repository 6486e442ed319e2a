import { routingHash } from './routing/cluster-view.js';
import { EnvoyDescriptors } from '../envoy/descriptors.js';
import { envoySettingsDefaults, resolveEnvoySettings, type EnvoySettings } from '../envoy/answer.js';
import { systemClock, type Clock } from '../common/clock.js';
import { invalidArgument } from '../common/errors.js';
import type { Membership, PacketTransport } from '../gossip/index.js';
import type { PeerTransport } from './transport/peer-transport.js';
import { storeDefaults, type StoreOptions } from '../limiter/store.js';
import type { CorruptSnapshotPolicy } from './state/snapshot.js';
import { policyLimits, type Policies, type PolicyDocument } from '../limiter/policies.js';
import { policyBoundsDefaults } from './sync/policy-parse.js';
import { aimdDefaults, validateAimd } from '../limiter/adaptive.js';
import type { AdaptiveOptions } from './sync/load-control.js';
import { MIN_NODE_TOKEN_LENGTH, isToken, type NodeTls } from './transport/credentials.js';
import { callerLimitsDefaults, validateCallerLimits, type CallerLimits } from './api/caller-ledger.js';
import { clusterKeyPlan } from './cluster/cluster-key.js';
import { leaseDefaults, resolveLeaseOptions, type LeaseOptions } from './lease/lease-options.js';

import type { UnavailablePolicy } from './routing/forwarder.js';

export type { UnavailablePolicy };
export type ReplicationMode = 'async' | 'sync';

export interface NodeOptions {
  /** Stable identity in the cluster. Default: random per process. */
  nodeId: string;
  /** Host the gRPC server binds and advertises. */
  host: string;
  /** gRPC port (peer traffic and the public API). 0 picks a free port. */
  port: number;
  /** UDP port for SWIM gossip. 0 picks a free port. */
  gossipPort: number;
  /** Port of the HTTP API (the README's HTTP API; docs/decisions/0004); 0 picks a free port; undefined (default): no HTTP. */
  httpPort: number | undefined;
  /** Seeds to join ("host:port" of their gossip ports). Empty: start a new cluster. */
  join: string[];
  /**
   * How long join may try the seeds before the node gives up and stops (the old behaviour);
   * undefined (default): after the gossip preset's join timeout it runs as a one-node cluster
   * and keeps trying the seeds in the background, with backoff, logging each failure — so
   * the first member of a cluster, or every member of a StatefulSet started at once, stays up.
   */
  joinTimeoutMs: number | undefined;
  /**
   * Run as a cluster member (gRPC server + gossip). Default: true when `join`, `port` or
   * `gossipPort` is given; otherwise a zero-configuration single node with no sockets.
   */
  cluster: boolean;
  /** Injected membership (tests, custom discovery); replaces SWIM when given. */
  membership: Membership | undefined;
  /** Shared gossip secrets, base64 of 16–64 bytes (the first signs; all are accepted), e.g. from a key file. */
  gossipKeys: string[];
  /**
   * Without gossipKeys, in a one-host cluster (host and every seed on loopback): use the
   * per-user key at $XDG_STATE_HOME/ringlimit/local-cluster.key (else ~/.local/state/…),
   * made once with mode 0600, which every node of this user on this host shares. `ringlimit
   * serve` sets it; embedded, false (default) leaves such a cluster unauthenticated, with a
   * `warning` event on every start.
   */
  localClusterKey: boolean;
  /**
   * Allow a cluster beyond this host (a non-loopback host with seeds) without a cluster key,
   * where anyone who reaches the ports can join: refused unless set. A `warning` event (serve:
   * a log line) on every start says so.
   */
  insecureNoClusterKey: boolean;
  gossipPreset: 'lan' | 'test';
  /**
   * The cluster's name, in every gossip packet: nodes drop packets of another name (or of
   * none), so two clusters on one network never merge. '' (default): no name.
   */
  clusterName: string;
  /** Mutual TLS on every gRPC port (public API and peer streams); peers and clients need a certificate the CA signed. */
  tls: NodeTls | undefined;
  /** Bearer tokens the public API accepts (any of them, for rotation); empty: none asked. */
  apiTokens: string[];
  /** Bearer tokens the admin calls accept (policies, load factor, a key's inspect / reset / set); empty: admin calls are refused. */
  adminTokens: string[];
  /** Distinct nodes after the owner that hold a copy of each key's state. */
  replicas: number;
  replication: ReplicationMode;
  /** Async replication sends changed state at most this long after the change, once replicationMinBatch decisions changed state. */
  replicationDelayMs: number;
  /**
   * While fewer than replicationMinBatch decisions changed state since the last send, async
   * replication waits for more, up to this long after the first: a quiet node sends a few
   * fuller frames a second instead of one every replicationDelayMs (and what a crash can lose
   * stays under replicationMinBatch decisions, or one replicationDelayMs of them).
   * Never less than replicationDelayMs.
   */
  replicationMaxDelayMs: number;
  /** Decisions (state changes) that make a flush worth its frame before replicationMaxDelayMs; 1: every replicationDelayMs. */
  replicationMinBatch: number;
  /** A forward not answered within this time fails over to the next candidate. */
  forwardTimeoutMs: number;
  /** 0 (default): adaptive batching of forwards, see maxFramesInFlight. Otherwise a fixed wait before each frame. */
  batchWaitMs: number;
  /** Adaptive batching: Forward frames not yet processed, shared by the peers that have some in flight (each may always have one). */
  maxFramesInFlight: number;
  /** Adaptive batching: forwards that go out at once, mid-turn, while their peer has room in the window. */
  eagerBatchSize: number;
  maxBatchSize: number;
  /** Forwards awaiting an answer at once; more are refused with RESOURCE_EXHAUSTED. */
  maxPendingForwards: number;
  /** When no candidate owner answers: decide here, allow, or deny. */
  onUnavailable: UnavailablePolicy;
  /**
   * After an ownership change, the longest the new owner asks the members that held its keys
   * for a key's state on first access. A backstop: it stops asking a member as soon as that
   * member announces it pushed everything (HandoffDone), which is usually within a second.
   */
  handoffWindowMs: number;
  /**
   * Before a member turns active (owns keys), how long it runs its own paths on a scratch
   * cluster (src/node/warm-up.ts: callers' traffic through its gRPC stack, replication,
   * forwards) so that it serves at speed from its first second (0: not at all).
   */
  warmUpMs: number;
  /**
   * The split rule: while members that were active are out of reach (a partition, a crash, or
   * this node restarted and has not seen them yet), every decision here spends only this
   * side's share of each key's remaining allowance, so the sides together never exceed the
   * limit; a key with no state here whose holders are out of reach is refused. A member out
   * of reach this long is declared dead and forgotten: the sides then decide alone (the old
   * bound). 0: the rule is off.
   */
  splitShareMs: number;
  /** How long a first access waits for the previous owner's state before deciding without it. */
  pullTimeoutMs: number;
  /** Graceful stop: bound on handing state over before leaving. */
  drainTimeoutMs: number;
  /** Where snapshots are written (periodically and on graceful stop) and read at start. Unset: no snapshot. */
  dataDir: string | undefined;
  /** With dataDir: a snapshot every this many ms, so a crash loses at most about one interval. 0: only on graceful stop. */
  snapshotIntervalMs: number;
  /** A snapshot that fails its checksum or checks: refuse to start, or set it aside and start empty. */
  onCorruptSnapshot: CorruptSnapshotPolicy;
  /** Hot-key mode (`global: true`): how often non-owners send their hits to owners and owners broadcast states. */
  globalSyncMs: number;
  /** Hot-key mode: hot keys a node tracks at once (copies of others' keys, and its own keys awaiting broadcast). */
  maxGlobalKeys: number;
  /**
   * Leases (off by default; docs/node.md): a member answers a busy key of a fixed window from a
   * slice of its allowance the owner granted it — exact, without a hop. `leases.enabled` turns
   * them on; the others are in lease/lease-options.ts.
   */
  leases: LeaseOptions;
  /** Bytes a peer stream may buffer before it counts as unavailable. */
  maxBufferedBytesPerPeer: number;
  /** What one caller (connection) and all callers may hold on the gRPC port: calls, requests in flight, unsent answers. */
  callerLimits: CallerLimits;
  clock: Clock;
  store: StoreOptions;
  /** Limits declared once, per action, group and user (docs/policies.md); node.setPolicies() replaces them. */
  policies: PolicyDocument | Policies | undefined;
  /** Bytes a policy document's text may have (SetPolicies, the watched file): larger is refused with RESOURCE_EXHAUSTED naming this option. */
  policyMaxBytes: number;
  /** Users a policy document may list: more is refused with RESOURCE_EXHAUSTED naming this option. */
  policyMaxUsers: number;
  /** envoyproxy/ratelimit configurations served to Envoy (envoy.service.ratelimit.v3 on the gRPC port; docs/envoy.md). */
  envoyConfig: EnvoyDescriptors | undefined;
  /** How the Envoy service answers beyond its configuration: envoyproxy/ratelimit's service-wide settings (docs/envoy.md). */
  envoy: EnvoySettings;
  /** Adaptive limits measured from this process's event-loop delay (AIMD); undefined: only setLoadFactor(). */
  adaptive: AdaptiveOptions | undefined;
  /** Seams for fault injection (the chaos harness): wrap the peer and gossip transports. */
  wrapPeerTransport: ((transport: PeerTransport) => PeerTransport) | undefined;
  wrapGossipTransport: ((transport: PacketTransport) => PacketTransport) | undefined;
}

export const nodeDefaults: NodeOptions = {
  nodeId: '',
  host: '127.0.0.1',
  port: 0,
  gossipPort: 0,
  httpPort: undefined,
  join: [],
  joinTimeoutMs: undefined,
  cluster: false,
  membership: undefined,
  gossipKeys: [],
  localClusterKey: false,
  insecureNoClusterKey: false,
  gossipPreset: 'lan',
  clusterName: '',
  tls: undefined,
  apiTokens: [],
  adminTokens: [],
  replicas: 1,
  replication: 'async',
  replicationDelayMs: 5,
  replicationMaxDelayMs: 50,
  replicationMinBatch: 8,
  forwardTimeoutMs: 1_000,
  batchWaitMs: 0,
  maxFramesInFlight: 4,
  eagerBatchSize: 16,
  maxBatchSize: 1_000,
  maxPendingForwards: 100_000,
  onUnavailable: 'local',
  handoffWindowMs: 30_000,
  warmUpMs: 300,
  splitShareMs: 60_000,
  pullTimeoutMs: 500,
  drainTimeoutMs: 5_000,
  dataDir: undefined,
  snapshotIntervalMs: 5_000,
  onCorruptSnapshot: 'refuse',
  globalSyncMs: 10,
  maxGlobalKeys: 10_000,
  leases: leaseDefaults,
  maxBufferedBytesPerPeer: 64 * 1024 * 1024,
  callerLimits: callerLimitsDefaults,
  clock: systemClock,
  store: storeDefaults,
  policies: undefined,
  policyMaxBytes: policyBoundsDefaults.maxBytes,
  policyMaxUsers: policyBoundsDefaults.maxUsers,
  envoyConfig: undefined,
  envoy: envoySettingsDefaults,
  adaptive: undefined,
  wrapPeerTransport: undefined,
  wrapGossipTransport: undefined,
};

export type NodeOptionsInput = Partial<Omit<NodeOptions, 'store' | 'callerLimits' | 'adaptive' | 'envoy' | 'leases'>> & { store?: Partial<StoreOptions>; callerLimits?: Partial<CallerLimits>; adaptive?: Partial<AdaptiveOptions>; envoy?: Partial<EnvoySettings>; leases?: Partial<LeaseOptions> };

function range(o: NodeOptions, name: keyof NodeOptions, min: number, max: number, integer = true): void {
  const v = o[name];
  if (typeof v !== 'number' || !(v >= min && v <= max) || (integer && !Number.isInteger(v))) {
    throw invalidArgument(name, `must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${String(v)}`);
  }
}

/** Fills defaults in one place and validates, with a message that names the option. */
/** The options given a value: one set to undefined (e.g. `nodeId: process.env.HOSTNAME` where it is unset) takes its default. */
function givenOptions(input: NodeOptionsInput): NodeOptionsInput {
  const given: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(input)) if (value !== undefined) given[name] = value;
  return given as NodeOptionsInput;
}

export function resolveNodeOptions(options: NodeOptionsInput = {}): NodeOptions {
  const input = givenOptions(options);
  const clusterImplied = input.join !== undefined || input.port !== undefined || input.gossipPort !== undefined || input.membership !== undefined;
  const o: NodeOptions = {
    ...nodeDefaults,
    cluster: clusterImplied,
    ...input,
    store: { ...storeDefaults, ...input.store, trackChanges: true, routingHash },
    callerLimits: validateCallerLimits({ ...callerLimitsDefaults, ...input.callerLimits }),
    adaptive: input.adaptive === undefined ? undefined : validateAdaptive({ ...aimdDefaults, sampleMs: 250, ...input.adaptive }),
    envoy: resolveEnvoySettings(input.envoy),
    leases: resolveLeaseOptions(input.leases),
  };
  if (o.nodeId === '') o.nodeId = `node-${Math.random().toString(36).slice(2, 10)}`;
  if (typeof o.nodeId !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/.test(o.nodeId)) {
    throw invalidArgument('nodeId', `must be 1..64 chars of [A-Za-z0-9._@-] starting alphanumeric, got ${JSON.stringify(o.nodeId)}`);
  }
  if (typeof o.host !== 'string' || o.host.length === 0) throw invalidArgument('host', 'must be a host name or IP');
  range(o, 'port', 0, 65_535);
  range(o, 'gossipPort', 0, 65_535);
  if (o.httpPort !== undefined) range(o, 'httpPort', 0, 65_535);
  if (!Array.isArray(o.join) || !o.join.every((s) => typeof s === 'string' && /^[^\s:]+:\d{1,5}$/.test(s))) {
    throw invalidArgument('join', `must be a list of host:port, got ${JSON.stringify(o.join)}`);
  }
  range(o, 'replicas', 0, 5);
  if (o.replication !== 'async' && o.replication !== 'sync') throw invalidArgument('replication', "must be 'async' or 'sync'");
  range(o, 'replicationDelayMs', 0, 10_000, false);
  range(o, 'replicationMaxDelayMs', 0, 10_000, false);
  range(o, 'replicationMinBatch', 1, 10_000);
  range(o, 'forwardTimeoutMs', 1, 60_000, false);
  range(o, 'batchWaitMs', 0, 100, false);
  range(o, 'maxFramesInFlight', 1, 64);
  range(o, 'eagerBatchSize', 1, 10_000);
  range(o, 'maxBatchSize', 1, 10_000);
  range(o, 'maxPendingForwards', 1, 10_000_000);
  if (!['local', 'allow', 'deny'].includes(o.onUnavailable)) throw invalidArgument('onUnavailable', "must be 'local', 'allow' or 'deny'");
  range(o, 'handoffWindowMs', 0, 600_000, false);
  range(o, 'warmUpMs', 0, 10_000, false);
  range(o, 'splitShareMs', 0, 86_400_000, false);
  range(o, 'pullTimeoutMs', 1, 60_000, false);
  range(o, 'drainTimeoutMs', 0, 600_000, false);
  if (o.joinTimeoutMs !== undefined) range(o, 'joinTimeoutMs', 1, 3_600_000);
  if (o.dataDir !== undefined && (typeof o.dataDir !== 'string' || o.dataDir === '')) throw invalidArgument('dataDir', 'must be a directory path');
  range(o, 'snapshotIntervalMs', 0, 3_600_000, false);
  if (o.onCorruptSnapshot !== 'refuse' && o.onCorruptSnapshot !== 'set-aside') throw invalidArgument('onCorruptSnapshot', "must be 'refuse' or 'set-aside'");
  range(o, 'globalSyncMs', 1, 10_000, false);
  range(o, 'maxGlobalKeys', 1, 1_000_000);
  range(o, 'maxBufferedBytesPerPeer', 1024, 2 ** 31);
  range(o, 'policyMaxBytes', 1024, 512 * 1024 * 1024);
  range(o, 'policyMaxUsers', 0, 10 * policyLimits.maxUsers);
  if (typeof o.clusterName !== 'string' || !/^([A-Za-z0-9][A-Za-z0-9._-]{0,63})?$/.test(o.clusterName)) {
    throw invalidArgument('clusterName', `must be 1 to 64 chars of [A-Za-z0-9._-] starting alphanumeric (or empty), got ${JSON.stringify(o.clusterName)}`);
  }
  if (o.envoyConfig !== undefined && !(o.envoyConfig instanceof EnvoyDescriptors)) throw invalidArgument('envoyConfig', 'must be an EnvoyDescriptors (readEnvoyConfigFile(path), or new EnvoyDescriptors(parsed YAML documents))');
  if (o.gossipPreset !== 'lan' && o.gossipPreset !== 'test') throw invalidArgument('gossipPreset', "must be 'lan' or 'test'");
  if (!Array.isArray(o.gossipKeys) || !o.gossipKeys.every((k) => typeof k === 'string' && /^[A-Za-z0-9+/]{22,88}={0,2}$/.test(k))) {
    throw invalidArgument('gossipKeys', 'must be base64-encoded keys of 16 to 64 bytes (e.g. `openssl rand -base64 32`)');
  }
  if (typeof o.localClusterKey !== 'boolean') throw invalidArgument('localClusterKey', 'must be true or false');
  if (typeof o.insecureNoClusterKey !== 'boolean') throw invalidArgument('insecureNoClusterKey', 'must be true or false');
  const keyPlan = clusterKeyPlan(o);
  if (keyPlan.kind === 'refused') throw invalidArgument('gossipKeys', keyPlan.why);
  if (o.tls !== undefined && !(['cert', 'key', 'ca'] as const).every((k) => Buffer.isBuffer(o.tls![k]) && o.tls![k].length > 0)) {
    throw invalidArgument('tls', 'must have cert, key and ca as PEM buffers');
  }
  if (!Array.isArray(o.apiTokens) || !o.apiTokens.every((t) => isToken(t, MIN_NODE_TOKEN_LENGTH))) {
    throw invalidArgument('apiTokens', 'must be tokens of 16 to 512 printable characters (e.g. `openssl rand -hex 32`)');
  }
  if (!Array.isArray(o.adminTokens) || !o.adminTokens.every((t) => isToken(t, MIN_NODE_TOKEN_LENGTH))) {
    throw invalidArgument('adminTokens', 'must be tokens of 16 to 512 printable characters (e.g. `openssl rand -hex 32`)');
  }
  if (typeof o.clock?.now !== 'function') throw invalidArgument('clock', 'must have a now() method');
  return o;
}

function validateAdaptive(o: AdaptiveOptions): AdaptiveOptions {
  validateAimd(o);
  if (typeof o.sampleMs !== 'number' || !(o.sampleMs >= 10 && o.sampleMs <= 60_000)) throw invalidArgument('adaptive.sampleMs', `must be a number from 10 to 60000, got ${String(o.sampleMs)}`);
  return o;
}
