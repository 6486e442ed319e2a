import { Registry } from 'prom-client';
import { createClientMetrics, createNodeMetrics, createStoreLimiterMetrics, type MetricsSource } from '../node/ops/metrics.js';
import { LATENCY_BUCKETS_SECONDS, LATENCY_SAMPLE_EVERY, LatencyHistogram } from '../common/latency.js';

/** A source the reference never reads: it lists the metrics, it does not scrape them. */
const unread = (): never => {
  throw new Error('the metrics reference reads no values');
};
const UNREAD_SOURCE: MetricsSource = { stats: unread, decisionsPerAction: unread, role: unread, latency: unread, envoy: unread };

function rows(registry: Registry): string[] {
  return registry
    .getMetricsAsArray()
    .filter((m) => m.name.startsWith('ringlimit_'))
    .map((m) => {
      const labels = 'labelNames' in m && Array.isArray(m.labelNames) ? m.labelNames.map(String).filter((l) => l !== 'le') : [];
      return `| \`${m.name}\` | ${String(m.type)} | ${labels.map((l) => `\`${l}\``).join(', ')} | ${m.help.replaceAll('|', '\\|')} |`;
    });
}

/**
 * docs/metrics.md, generated from the registries themselves (`npm run docs:config` writes
 * it; a test fails when it is not current).
 */
export function renderMetricsReference(): string {
  const header = ['| metric | type | labels | meaning |', '| --- | --- | --- | --- |'];
  return [
    '# Metrics reference',
    '',
    'Generated from the registries by `npm run docs:config`; `test/config-reference.test.ts` fails when this file is not current. Names follow Prometheus conventions: the `ringlimit_` prefix, units in the name, `_total` on counters. Every value is read from the node’s own counters when scraped, so the hot paths keep no metric objects.',
    '',
    '**Label cardinality.** No label carries a user key, except where an Envoy configuration asks for it: `ringlimit_envoy_limit_hits_total` is labelled with envoyproxy/ratelimit\'s stats key of each limit, which holds descriptor values only for rules with `detailed_metric` or `value_to_metric` (as that service\'s stats do), and takes at most 2,000 keys (then `_overflow`). `action` takes the first 100 actions a node meets, then `(other)`; `result`, `reason`, `event`, `path` and `stat` take fixed sets of values. Without Envoy rules, a node exposes at most about 330 `ringlimit_` series (200 of them decisions by action and result), besides the process metrics.',
    '',
    `**Latency.** \`ringlimit_decision_duration_seconds\` times one decision in ${LATENCY_SAMPLE_EVERY} (two clock reads on the sampled ones, nothing on the others), in buckets from ${LATENCY_BUCKETS_SECONDS[0]! * 1e6} µs to ${LATENCY_BUCKETS_SECONDS.at(-1)} s. \`path="local"\`: answered by the node that was asked (its own keys, hot-key copies); \`path="forwarded"\`: sent to the key's owner and answered; \`path="client"\`: a \`RingLimitClient\`'s calls, from its own registry; \`path="store"\`: a limiter on Redis, from its call to the store's answer. The synchronous \`allowNow()\` is not timed. The p99 per path across a cluster:`,
    '',
    '```promql',
    'histogram_quantile(0.99, sum by (le, path) (rate(ringlimit_decision_duration_seconds_bucket[5m])))',
    '```',
    '',
    '## A node (`node.metrics()`, `GET /metrics`)',
    '',
    ...header,
    ...rows(createNodeMetrics(UNREAD_SOURCE)),
    '',
    'Besides these, prom-client’s default process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `nodejs_eventloop_lag_seconds`, heap and GC).',
    '',
    '## A client (`client.metrics()`)',
    '',
    ...header,
    ...rows(createClientMetrics({ stats: unread, latency: new LatencyHistogram() })),
    '',
    '## A limiter on Redis (`createStoreLimiterMetrics(limiter)`, `docs/redis.md`)',
    '',
    ...header,
    ...rows(createStoreLimiterMetrics({ stats: unread, latency: new LatencyHistogram() })),
    '',
  ].join('\n');
}
