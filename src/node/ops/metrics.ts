import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type { Registry } from 'prom-client';
import type { SwimStats } from '../../gossip/stats.js';
import type { NodeStats } from './node-stats.js';
import type { RemoteLimiterStats } from '../../limiter/remote-limiter.js';
import type { EnvoyStats } from '../../envoy/stats.js';
import { LATENCY_BUCKETS_SECONDS, LATENCY_SAMPLE_EVERY, type LatencyHistogram } from '../../common/latency.js';

/** What a node's metrics read of what it is (lone or member): NodeRole. */
export interface MetricsRole {
  gossipStats(): SwimStats | undefined;
  members(): unknown[];
  owners(): string[];
  /** Membership events seen, by kind. */
  membershipEvents(): Record<string, number>;
  replicationLag(): LatencyHistogram | undefined;
}

/** What the metrics read, at each scrape: nothing is counted twice, and the hot paths keep no metric objects. */
export interface MetricsSource {
  stats(): NodeStats;
  decisionsPerAction(): { action: string; allowed: number; rejected: number }[];
  role(): MetricsRole;
  /** Sampled decision latency: answered here (`local`), and sent to the owner and answered (`forwarded`). */
  latency(): { local: LatencyHistogram; forwarded: LatencyHistogram };
  /** The Envoy rate limit service's stats (envoyproxy/ratelimit's, per limit key). */
  envoy(): EnvoyStats;
}

/** Gossip drop reasons with a label of their own (others count as "other"): a bound on the label's values. */
const DROP_REASONS = new Set(['tooShort', 'badMagic', 'badVersion', 'authMissing', 'authFailed', 'authUnexpected', 'otherCluster', 'oversize', 'undecodable', 'replayed', 'stale', 'fromSelf', 'badSourceAddress', 'outgoingOversize']);

type Read = () => number;

/** One line of a histogram's exposition, in the shape prom-client's registry reads. */
interface HistogramLine {
  metricName: string;
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string>;
  value: number;
}

/**
 * A Prometheus histogram read from LatencyHistograms at each scrape, so that recording
 * a sample is an array increment, not a prom-client call. prom-client's registry (text and
 * JSON alike) reads a histogram through getForPromString(): that is what this one answers.
 */
class SampledHistogram extends Histogram<string> {
  constructor(
    private readonly metricName: string,
    private readonly helpText: string,
    registry: Registry,
    /** '' for a histogram without a label. */
    private readonly label: string,
    private readonly read: () => [string, LatencyHistogram][],
  ) {
    super({ name: metricName, help: helpText, labelNames: label === '' ? [] : [label], buckets: [...LATENCY_BUCKETS_SECONDS], registers: [registry] });
  }

  getForPromString(): Promise<{ name: string; help: string; type: string; aggregator: string; values: HistogramLine[] }> {
    const values: HistogramLine[] = [];
    const line = (suffix: string, labels: Record<string, string | number>, value: number): void => {
      values.push({ metricName: `${this.metricName}${suffix}`, labels, sharedLabels: {}, value });
    };
    for (const [labelValue, h] of this.read()) {
      const labels = (): Record<string, string | number> => (this.label === '' ? {} : { [this.label]: labelValue });
      let cumulative = 0;
      for (let i = 0; i < h.counts.length; i++) {
        cumulative += h.counts[i]!;
        line('_bucket', { ...labels(), le: i < LATENCY_BUCKETS_SECONDS.length ? LATENCY_BUCKETS_SECONDS[i]! : '+Inf' }, cumulative);
      }
      line('_sum', labels(), h.sumSeconds);
      line('_count', labels(), h.count);
    }
    return Promise.resolve({ name: this.metricName, help: this.helpText, type: 'histogram', aggregator: 'sum', values });
  }
}

/** Registers the latency histogram `name`, read from LatencyHistograms, labelled by `label` ('' for none). */
export function registerLatencyHistogram(registry: Registry, name: string, help: string, label: string, read: () => [string, LatencyHistogram][]): void {
  new SampledHistogram(name, help, registry, label, read);
}

type ReadLabelled = () => [Record<string, string>, number][];

function counter(registry: Registry, name: string, help: string, read: Read): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

function labelledCounter(registry: Registry, name: string, help: string, labelNames: string[], read: ReadLabelled): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) if (value > 0) this.inc(labels, value);
    },
  });
}

function gauge(registry: Registry, name: string, help: string, read: Read): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}


/**
 * A node's metrics on a prom-client registry, read from its counters when scraped, named as
 * Prometheus advises: `ringlimit_` prefix, units in the name, `_total` for counters. No label
 * carries a user key; `action` takes the first 100 actions a node meets (then "(other)"),
 * `reason`, `result`, `event` and `path` a fixed set: at most about 320 series per node besides the
 * process metrics.
 */
export function createNodeMetrics(source: MetricsSource, registry: Registry = new Registry()): Registry {
  // One snapshot of the stats per scrape, read by every metric of that scrape.
  let snapshot: NodeStats | undefined;
  let snapshotAt = -1;
  const stats = (): NodeStats => {
    const now = performance.now();
    if (snapshot === undefined || now - snapshotAt > 50) {
      snapshot = source.stats();
      snapshotAt = now;
    }
    return snapshot;
  };
  labelledCounter(registry, 'ringlimit_decisions_total', 'Decisions made by this node for keys it decides, by action and result.', ['action', 'result'], () =>
    source.decisionsPerAction().flatMap(({ action, allowed, rejected }): [Record<string, string>, number][] => [
      [{ action, result: 'allowed' }, allowed],
      [{ action, result: 'rejected' }, rejected],
    ]),
  );
  registerLatencyHistogram(
    registry,
    'ringlimit_decision_duration_seconds',
    `Time from a request reaching this node (embedded call, gRPC or HTTP API) to its answer: path="local" answered here, path="forwarded" sent to its owner. Sampled: one decision in ${LATENCY_SAMPLE_EVERY} is timed.`,
    'path',
    () => {
      const { local, forwarded } = source.latency();
      return [
        ['local', local],
        ['forwarded', forwarded],
      ];
    },
  );
  registerLatencyHistogram(
    registry,
    'ringlimit_replication_lag_seconds',
    'Replication lag: from the first change after a flush (a decision on a key this node owns) to the ack of the first frame that flush sent to a replica. Measured on at most one flush per 100 ms (the other frames ask for no ack).',
    '',
    () => {
      const lag = source.role().replicationLag();
      return lag === undefined ? [] : [['', lag]];
    },
  );
  gauge(registry, 'ringlimit_keys', 'Keys (action, key pairs) held.', () => stats().store.keys);
  counter(registry, 'ringlimit_evictions_total', 'Live keys dropped because maxKeys was reached (each may over-admit once).', () => stats().store.evictions);
  counter(registry, 'ringlimit_expired_keys_total', 'Idle keys dropped by the sweeper.', () => stats().store.expired);
  counter(registry, 'ringlimit_shape_mismatches_total', 'Requests refused (FAILED_PRECONDITION) because they describe a key in use with another algorithm or window.', () => stats().store.shapeMismatches);
  counter(registry, 'ringlimit_shape_conversions_total', 'Keys in use moved to the algorithm or window the policies now give them.', () => stats().store.shapeConversions);
  counter(registry, 'ringlimit_implausible_states_total', 'States from peers or a snapshot clamped or dropped for values no decision could have left (docs/request-shape.md).', () => stats().store.implausibleStates);
  counter(registry, 'ringlimit_forwards_total', 'Requests forwarded to their owners.', () => stats().forwarder.forwarded);
  counter(registry, 'ringlimit_forward_frames_total', 'Forward frames sent (batches of forwarded requests).', () => stats().forwarder.frames);
  counter(registry, 'ringlimit_forward_failovers_total', 'Forwards moved to the next candidate owner.', () => stats().forwarder.failovers);
  counter(registry, 'ringlimit_forward_timeouts_total', 'Forwards not answered in forwardTimeoutMs.', () => stats().forwarder.timeouts);
  counter(registry, 'ringlimit_unavailable_decisions_total', 'Decisions made by the onUnavailable policy: no candidate owner answered.', () => stats().unavailable);
  counter(registry, 'ringlimit_forwards_received_total', 'Forwarded requests received from peers.', () => stats().received);
  counter(registry, 'ringlimit_replication_entries_sent_total', 'Key states sent to replicas.', () => stats().replication.entriesSent);
  counter(registry, 'ringlimit_replication_resync_entries_total', 'Key states re-sent after ring changes, to holders new since the last resync (part of entries_sent).', () => stats().replication.resyncEntriesSent);
  counter(registry, 'ringlimit_replication_entries_received_total', 'Key states received as a replica.', () => stats().replication.entriesReceived);
  counter(registry, 'ringlimit_replication_entries_refused_total', 'Key states refused: the sender holds no copy of the key.', () => stats().replication.entriesRefused);
  counter(registry, 'ringlimit_handoff_pulls_total', 'States pulled from a previous owner on first access.', () => stats().handoff.pulls);
  counter(registry, 'ringlimit_handoff_routed_to_named_total', 'Pulled keys routed to the node the answer named as the one deciding them (views that differed while the cluster formed), not decided here.', () => stats().handoff.routedToNamed);
  counter(registry, 'ringlimit_handoff_pull_timeouts_total', 'Pulls not answered in pullTimeoutMs.', () => stats().handoff.pullTimeouts);
  counter(registry, 'ringlimit_handoff_moved_during_pull_total', 'Requests routed again after their pull: the ring changed meanwhile and their key moved on.', () => stats().handoff.movedDuringPull);
  counter(registry, 'ringlimit_handoff_entries_pushed_total', 'Key states pushed to new owners.', () => stats().handoff.pushedEntries);
  counter(registry, 'ringlimit_handoff_entries_received_total', 'Key states received from previous owners.', () => stats().handoff.receivedEntries);
  gauge(registry, 'ringlimit_split_share', 'The part of the cluster (as it was) this node reaches: 1 when whole; below 1 each decision spends only this share of a key’s remaining allowance.', () => stats().split.share);
  gauge(registry, 'ringlimit_split_missing_members', 'Members out of reach that did not leave (not yet declared dead).', () => stats().split.missing);
  counter(registry, 'ringlimit_split_refused_total', 'Requests refused during a split: no state here, and the members that may hold it out of reach.', () => stats().split.refusedUnknown);
  counter(registry, 'ringlimit_handoff_announcements_total', 'Times this node announced it had pushed, and had acked, every state it held that others need after a ring change (or a drain).', () => stats().handoff.announcements);
  gauge(registry, 'ringlimit_handoff_peers_pending', 'Members this node may still pull from for the current ring: they have not announced their push.', () => stats().handoff.peersPending);
  counter(registry, 'ringlimit_handoff_entries_refused_total', 'Handed-off states refused: the sender held no copy of the key.', () => stats().handoff.refusedEntries);
  counter(registry, 'ringlimit_hot_key_copy_decisions_total', 'Hot-key decisions answered from a local copy.', () => stats().hotKeys.answeredFromCopy);
  counter(registry, 'ringlimit_peer_malformed_frames_total', 'Peer frames dropped as malformed.', () => stats().malformedFrames);
  counter(registry, 'ringlimit_peer_streams_refused_total', 'Peer streams refused: no valid proof of the cluster key, or not a member.', () => stats().peerAuth.refusedStreams);
  counter(registry, 'ringlimit_peer_unauthenticated_frames_total', 'Peer frames dropped on a stream not (yet) authenticated.', () => stats().peerAuth.unauthenticatedFrames);
  labelledCounter(registry, 'ringlimit_caller_refusals_total', 'Work refused to callers of the gRPC port, by bound.', ['reason'], () => {
    const c = stats().callers;
    return [
      [{ reason: 'calls' }, c.refusedCalls],
      [{ reason: 'items' }, c.refusedItems],
      [{ reason: 'unsent' }, c.refusedUnsent],
      [{ reason: 'large_batch' }, c.refusedLarge],
      [{ reason: 'unread' }, c.refusedUnread],
    ];
  });
  counter(registry, 'ringlimit_caller_calls_reset_total', 'Calls reset because their caller stopped reading its answers.', () => stats().callers.cancelledSlowStreams);
  gauge(registry, 'ringlimit_caller_open_calls', 'Calls open on the gRPC port.', () => stats().callers.openCalls);
  gauge(registry, 'ringlimit_caller_queued_calls', 'Calls on the gRPC port waiting for room: their host or the node had as many open as it may.', () => stats().callers.queuedCalls);
  counter(registry, 'ringlimit_caller_calls_queued_total', 'Calls that waited for room before they ran (or were refused).', () => stats().callers.callsQueued);
  gauge(registry, 'ringlimit_caller_unsent_bytes', 'Answer bytes handed to HTTP/2 and not yet sent.', () => stats().callers.unsentBytes);
  gauge(registry, 'ringlimit_members', 'Live members in this node’s gossip view, itself included.', () => Math.max(1, source.role().members().length));
  gauge(registry, 'ringlimit_ring_owners', 'Nodes owning keys on this node’s ring.', () => source.role().owners().length);
  labelledCounter(registry, 'ringlimit_membership_events_total', 'Membership events this node saw, by kind.', ['event'], () =>
    Object.entries(source.role().membershipEvents()).map(([event, n]): [Record<string, string>, number] => [{ event }, n]),
  );
  counter(registry, 'ringlimit_gossip_suspicions_total', 'Members this node suspected of failure.', () => source.role().gossipStats()?.suspicionsRaised ?? 0);
  counter(registry, 'ringlimit_gossip_probes_failed_total', 'Failure-detector probes that got no answer.', () => source.role().gossipStats()?.probesFailed ?? 0);
  counter(registry, 'ringlimit_gossip_sent_bytes_total', 'Gossip bytes sent.', () => source.role().gossipStats()?.bytesSent ?? 0);
  counter(registry, 'ringlimit_gossip_received_bytes_total', 'Gossip bytes received.', () => source.role().gossipStats()?.bytesReceived ?? 0);
  labelledCounter(registry, 'ringlimit_gossip_dropped_packets_total', 'Gossip packets dropped, by reason.', ['reason'], () => {
    const totals = new Map<string, number>();
    for (const [reason, n] of Object.entries(source.role().gossipStats()?.dropReasons ?? {})) {
      const label = DROP_REASONS.has(reason) ? reason : 'other';
      totals.set(label, (totals.get(label) ?? 0) + n);
    }
    return [...totals].map(([reason, n]): [Record<string, string>, number] => [{ reason }, n]);
  });
  gauge(registry, 'ringlimit_policy_version', 'Version of the policy document in force (0: the one the node started with).', () => stats().policies.version);
  gauge(registry, 'ringlimit_load_factor', 'Adaptive limits: the factor every limit is scaled by (1: none).', () => stats().loadFactor);
  gauge(registry, 'ringlimit_caller_clock_skew_max_milliseconds', 'Largest distance seen between a caller’s timestamp and this node’s clock.', () => stats().callerSkew.maxAbsMs);
  labelledCounter(
    registry,
    'ringlimit_envoy_limit_hits_total',
    "Envoy rate limit service: hits per limit, as envoyproxy/ratelimit counts them (stat: total_hits, over_limit, near_limit, within_limit, shadow_mode), by that service's stats key (key: domain.key_value…; detailed_metric and value_to_metric put values in it; past 2,000 keys, _overflow).",
    ['key', 'stat'],
    () =>
      [...source.envoy().keys].flatMap(([key, s]): [Record<string, string>, number][] => [
        [{ key, stat: 'total_hits' }, s.totalHits],
        [{ key, stat: 'over_limit' }, s.overLimit],
        [{ key, stat: 'near_limit' }, s.nearLimit],
        [{ key, stat: 'within_limit' }, s.withinLimit],
        [{ key, stat: 'shadow_mode' }, s.shadowMode],
      ]),
  );
  labelledCounter(registry, 'ringlimit_envoy_config_loads_total', 'Envoy rate limit configuration loads: success (taken) and error (refused; the one in force stayed).', ['result'], () => [
    [{ result: 'success' }, source.envoy().configLoadSuccess],
    [{ result: 'error' }, source.envoy().configLoadError],
  ]);
  counter(registry, 'ringlimit_envoy_global_shadow_mode_total', 'Envoy answers turned OK by the service-wide shadow mode (--envoy-shadow-mode).', () => source.envoy().globalShadowMode);
  counter(registry, 'ringlimit_envoy_domain_not_found_total', 'Envoy descriptors of a domain the configuration does not have (answered OK, no limit).', () => source.envoy().domainNotFound);
  counter(registry, 'ringlimit_envoy_service_errors_total', 'Envoy ShouldRateLimit calls failed: bad input, no configuration, no token, or the cluster unable to count.', () => source.envoy().serviceErrors);
  counter(registry, 'ringlimit_snapshots_written_total', 'Snapshots written to the data directory.', () => stats().snapshot.written);
  counter(registry, 'ringlimit_snapshots_failed_total', 'Snapshot writes that failed.', () => stats().snapshot.failed);
  counter(registry, 'ringlimit_snapshots_skipped_total', 'Snapshot checks that found no key and no member changed since the last write: nothing written.', () => stats().snapshot.skipped);
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** What a RingLimitClient's metrics read at each scrape. */
export interface ClientMetricsSource {
  stats(): { messages: number; requests: number; failovers: number; timeouts: number; streamBreaks: number };
  latency: LatencyHistogram;
}

/**
 * A RingLimitClient's metrics: its decision latency as ringlimit_decision_duration_seconds
 * with path="client" (beside the nodes' local and forwarded paths on a dashboard), and its
 * messages, requests, failovers and timeouts.
 */
export function createClientMetrics(source: ClientMetricsSource, registry: Registry = new Registry()): Registry {
  registerLatencyHistogram(registry, 'ringlimit_decision_duration_seconds', `Time from a client call to its answer (path="client"). Sampled: one call in ${LATENCY_SAMPLE_EVERY} is timed.`, 'path', () => [['client', source.latency]]);
  counter(registry, 'ringlimit_client_messages_total', 'AllowStream messages the client sent (each a batch of requests).', () => source.stats().messages);
  counter(registry, 'ringlimit_client_requests_total', 'Requests the client sent.', () => source.stats().requests);
  counter(registry, 'ringlimit_client_failovers_total', 'Requests moved to another node (timeout, broken stream, UNAVAILABLE answer).', () => source.stats().failovers);
  counter(registry, 'ringlimit_client_timeouts_total', 'Requests not answered in timeoutMs.', () => source.stats().timeouts);
  counter(registry, 'ringlimit_client_stream_breaks_total', 'AllowStreams that broke.', () => source.stats().streamBreaks);
  return registry;
}

export interface StoreLimiterMetricsSource {
  stats(): RemoteLimiterStats;
  latency: LatencyHistogram;
}

/**
 * A limiter on a shared store's metrics (createLimiter({ store }), e.g. on Redis): its
 * decisions, the refusals its cache answered, the store's round trips and failures, and the
 * decision latency as ringlimit_decision_duration_seconds with path="store".
 */
export function createStoreLimiterMetrics(source: StoreLimiterMetricsSource, registry: Registry = new Registry()): Registry {
  registerLatencyHistogram(registry, 'ringlimit_decision_duration_seconds', `Time from a call to the store's answer (path="store"). Sampled: one call in ${LATENCY_SAMPLE_EVERY} is timed.`, 'path', () => [['store', source.latency]]);
  labelledCounter(registry, 'ringlimit_decisions_total', 'Decisions, by result (allowed, rejected): from the store, the rejection cache or whenUnavailable.', ['result'], () => {
    const stats = source.stats();
    return [
      [{ result: 'allowed' }, stats.allowed],
      [{ result: 'rejected' }, stats.rejected],
    ];
  });
  counter(registry, 'ringlimit_store_cached_rejections_total', 'Refusals answered from the rejection cache, with no store call (exact until the retry time).', () => source.stats().cachedRejections);
  counter(registry, 'ringlimit_store_calls_total', 'Round trips to the store (each a batch of decisions).', () => source.stats().store.calls);
  counter(registry, 'ringlimit_store_decisions_sent_total', 'Decisions sent to the store.', () => source.stats().store.decisions);
  counter(registry, 'ringlimit_store_errors_total', 'Store calls that failed or passed their deadline.', () => source.stats().storeErrors);
  counter(registry, 'ringlimit_store_fallback_decisions_total', 'Decisions made by whenUnavailable (the store down, slow or skipped).', () => source.stats().fallbackDecisions);
  gauge(registry, 'ringlimit_store_skipped', '1 while the store is skipped after a failure (for unavailableRetryMs), else 0.', () => (source.stats().storeSkipped ? 1 : 0));
  return registry;
}
