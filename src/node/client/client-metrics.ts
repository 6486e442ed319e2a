import { LatencyHistogram } from '../../common/latency.js';
import { createClientMetrics, type Registry } from '../ops/metrics.js';

export interface ClientStats {
  /** AllowStream messages sent, and the requests they carried (requests / messages = batch size). */
  messages: number;
  requests: number;
  /** Requests moved to another node (timeout, broken stream, UNAVAILABLE answer). */
  failovers: number;
  timeouts: number;
  streamBreaks: number;
}

/** A client's counters and sampled call latency, counted as it works and read at each scrape. */
export class ClientMetrics {
  readonly counters: ClientStats = { messages: 0, requests: 0, failovers: 0, timeouts: 0, streamBreaks: 0 };
  /** Sampled call latency, from allow() to its answer. */
  readonly latency = new LatencyHistogram();
  private registry: Registry | undefined;

  stats(): ClientStats {
    return { ...this.counters };
  }

  /** The Prometheus registry, made on first use (see RingLimitClient.metrics). */
  registryOf(registry: Registry | undefined): Registry {
    this.registry ??= createClientMetrics({ stats: () => this.counters, latency: this.latency }, registry);
    return this.registry;
  }
}
