import { RingLimitError } from '../common/errors.js';
import { envoySettingsDefaults } from '../envoy/answer.js';
import { EnvoyStats } from '../envoy/stats.js';
import type { RateLimitRequest } from '../limiter/types.js';
import { callerLimitsDefaults } from './api/caller-ledger.js';
import type { HttpApiBackend } from './api/http-api.js';
import { NodeServers } from './api/servers.js';
import { RingLimitClient } from './client/client.js';
import { WarmUpCluster } from './cluster/warm-up-cluster.js';
import { PLACEMENT } from './routing/cluster-view.js';

/** The scratch cluster's peer-side work runs in slices this long... */
const SLICE_MS = 1;
/** ...with this long between them (gossip, the join and the gRPC callers go on meanwhile). */
const REST_MS = 3;
/** Callers of the warm-up's own gRPC port at once: a busy client's concurrency. */
const CALLERS = 64;
/** How long the warm-up's servers get to close. */
const CLOSE_MS = 1_000;

export interface WarmUpResult {
  /** Rounds of the scratch cluster's peer-side work (WarmUpCluster.round). */
  rounds: number;
  ms: number;
  /** Times the peer-side work gave the event loop back. */
  yields: number;
  /** Requests answered through the warm-up's gRPC port (0 when it could not open one). */
  served: number;
}

/**
 * What a member does before it turns active (and owns keys): for `budgetMs` it runs the paths
 * a busy member runs, on a scratch cluster of its own classes (WarmUpCluster; no state of the
 * node is touched) — callers' AllowStream traffic through the node's gRPC server stack (its
 * caller bounds, the stream service, validation, routing, the owner's decision) from the
 * node's own client, on a port of its own on 127.0.0.1 that lives only as long as the
 * warm-up; replication sent, imported and merged; a peer's forwards served. A process that
 * owned keys at once ran its first second in the interpreter while its share of the cluster's
 * traffic already came to it: this moves that cost before the ring changes. 0 skips it.
 */
export async function warmUp(budgetMs: number): Promise<WarmUpResult> {
  const started = performance.now();
  if (budgetMs <= 0) return { rounds: 0, ms: 0, yields: 0, served: 0 };
  const cluster = new WarmUpCluster();
  const deadline = started + budgetMs;
  let servers: NodeServers | undefined;
  let client: RingLimitClient | undefined;
  try {
    servers = await NodeServers.start(scratchBackend(cluster), { host: '127.0.0.1', grpcPort: 0, httpPort: undefined, tls: undefined, apiTokens: [], adminTokens: [], callerLimits: callerLimitsDefaults });
    client = new RingLimitClient({ nodes: [servers.grpcAddress!], ringAware: false });
  } catch {
    // No loopback port to be had: the scratch cluster's own paths only.
  }
  const served = { count: 0 };
  let yields = 0;
  const peerSide = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const sliceEnd = Math.min(deadline, performance.now() + SLICE_MS);
      while (performance.now() < sliceEnd) cluster.round();
      await new Promise((resolve) => setTimeout(resolve, client === undefined ? 0 : REST_MS));
      yields++;
    }
  };
  try {
    await Promise.all([peerSide(), ...(client === undefined ? [] : callers(client, cluster.requests, deadline, served))]);
  } finally {
    client?.close();
    await servers?.close(Date.now() + CLOSE_MS);
    cluster.close();
  }
  return { rounds: cluster.rounds, ms: performance.now() - started, yields, served: served.count };
}

/** CALLERS loops asking `client` in turn over `requests` until `deadline`. */
function callers(client: RingLimitClient, requests: WarmUpCluster['requests'], deadline: number, served: { count: number }): Promise<void>[] {
  let next = 0;
  const ask = ({ request, maxWaitMs }: { request: RateLimitRequest; maxWaitMs: number | undefined }): Promise<unknown> => (maxWaitMs === undefined ? client.allow(request) : client.reserve(request, { maxWaitMs }));
  return Array.from({ length: CALLERS }, async () => {
    while (performance.now() < deadline) {
      try {
        await ask(requests[next++ % requests.length]!);
        served.count++;
      } catch {
        return; // the warm-up's own port failed: the rest of the budget goes to the scratch cluster
      }
    }
  });
}

const warmUpOnly = (): never => {
  throw new RingLimitError('UNAVAILABLE', 'a warm-up port answers decisions only');
};

/** The warm-up port's backend: decisions go to the scratch member; everything else is refused. */
function scratchBackend(cluster: WarmUpCluster): HttpApiBackend {
  const stats = new EnvoyStats();
  return {
    nodeId: 'warm-up',
    decide: (request, maxWaitMs) => cluster.decide(request, maxWaitMs),
    health: () => ({ nodeId: 'warm-up', status: 'joining', owners: [], members: 0 }),
    members: () => ({ owners: [], placement: PLACEMENT, ring: 0 }),
    ringDigest: () => 0,
    recordCallerTime: () => undefined,
    setPolicies: warmUpOnly,
    getPolicies: warmUpOnly,
    setLoadFactor: warmUpOnly,
    envoy: () => ({ config: undefined, settings: envoySettingsDefaults, stats }),
    admin: () => Promise.reject(new RingLimitError('UNAVAILABLE', 'a warm-up port answers decisions only')),
    ready: () => ({ ready: false, reason: 'warming up' }),
    cluster: () => ({}),
    metrics: () => Promise.resolve({ contentType: 'text/plain', text: '' }),
  };
}
