import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RingLimitError } from '../common/errors.js';
import { envoySettingsDefaults } from '../envoy/answer.js';
import { EnvoyStats } from '../envoy/stats.js';
import type { RateLimitRequest } from '../limiter/types.js';
import { callerLimitsDefaults } from './api/caller-ledger.js';
import { itemError } from './api/backend.js';
import type { HttpApiBackend } from './api/http-api.js';
import { NodeServers } from './api/servers.js';
import { decodeStreamRequest, encodeStreamRequest, encodeStreamResponse, type OutgoingResult } from './api/stream-codec.js';
import { RingLimitClient } from './client/client.js';
import { WarmUpCluster } from './cluster/warm-up-cluster.js';
import { PLACEMENT } from './routing/cluster-view.js';

/** The in-process work (AllowStream messages served without a socket, the scratch cluster's peer side) runs in slices this long... */
const SLICE_MS = 4;
/** ...with this long between them (gossip, the join and the gRPC callers go on meanwhile). */
const REST_MS = 2;
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
  /** Where that server was (`unix:<path>`, or 127.0.0.1:port on the fallback; closed, its directory removed, once warmUp() resolves); undefined without one. */
  address: string | undefined;
}

/**
 * What a member does before it turns active (and owns keys): for `budgetMs` it runs the paths
 * a busy member runs, on a scratch cluster of its own classes (WarmUpCluster; no state of the
 * node is touched) — callers' AllowStream traffic through the node's gRPC server stack (its
 * caller bounds, the stream service, validation, routing, the owner's decision) from the
 * node's own client, on a Unix socket of its own that lives only as long as the
 * warm-up; replication sent, imported and merged; a peer's forwards served. A process that
 * owned keys at once ran its first second in the interpreter while its share of the cluster's
 * traffic already came to it: this moves that cost before the ring changes. 0 skips it.
 */
export async function warmUp(budgetMs: number, warn: (message: string) => void = () => undefined): Promise<WarmUpResult> {
  const started = performance.now();
  if (budgetMs <= 0) return { rounds: 0, ms: 0, yields: 0, served: 0, address: undefined };
  const deadline = started + budgetMs;
  const served = { count: 0 };
  let yields = 0;
  let cluster: WarmUpCluster | undefined;
  let port: WarmUpPort | undefined;
  try {
    cluster = new WarmUpCluster();
    port = await WarmUpPort.open(cluster).catch((error: unknown) => {
      warn(`the warm-up could not open its gRPC server (${error instanceof Error ? error.message : String(error)}): it runs the in-process paths only`);
      return undefined;
    });
    const messages = new StreamMessages(cluster);
    const inProcess = async (scratch: WarmUpCluster): Promise<void> => {
      while (performance.now() < deadline) {
        const sliceEnd = Math.min(deadline, performance.now() + SLICE_MS);
        while (performance.now() < sliceEnd) {
          messages.serveOne();
          scratch.round();
        }
        await new Promise((resolve) => setTimeout(resolve, port === undefined ? 0 : REST_MS));
        yields++;
      }
      // Calls still in flight end now (rejected): the member turns active on time.
      port?.client.close();
    };
    await Promise.all([inProcess(cluster), ...(port === undefined ? [] : callers(port.client, cluster.requests, deadline, served))]);
  } finally {
    try {
      await port?.close();
    } finally {
      cluster?.close();
    }
  }
  return { rounds: cluster.rounds, ms: performance.now() - started, yields, served: served.count, address: port?.address };
}

/**
 * The warm-up's own gRPC server (the node's server stack, a random token) and the node's
 * client to it, on a Unix socket in a private directory: no TCP port, so the warm-up never
 * takes a port another program picked and has not bound yet, and no other user reaches it.
 * Where no directory can be made (a read-only /tmp, as in a locked-down pod) it listens on a
 * port of 127.0.0.1 instead, guarded by the token alone.
 */
export class WarmUpPort {
  private constructor(
    private readonly servers: NodeServers,
    /** The socket's directory; undefined on the TCP fallback. */
    private readonly directory: string | undefined,
    readonly client: RingLimitClient,
    readonly address: string,
  ) {}

  static async open(cluster: WarmUpCluster): Promise<WarmUpPort> {
    // Callers need this token too: another process of the same user (or, on the fallback, of the host) reaches nothing but the refusal.
    const token = randomBytes(16).toString('hex');
    const directory = await mkdtemp(join(tmpdir(), 'ringlimit-warm-up-')).catch(() => undefined); // mode 0700
    let servers: NodeServers | undefined;
    try {
      const grpcSocketPath = directory === undefined ? undefined : join(directory, 'grpc.sock');
      servers = await NodeServers.start(scratchBackend(cluster), { host: '127.0.0.1', grpcPort: 0, grpcSocketPath, httpPort: undefined, tls: undefined, apiTokens: [token], adminTokens: [], callerLimits: callerLimitsDefaults });
      const address = servers.grpcAddress;
      if (address === undefined) throw new RingLimitError('INTERNAL', 'the warm-up server has no gRPC address');
      return new WarmUpPort(servers, directory, new RingLimitClient({ nodes: [address], ringAware: false, token }), address);
    } catch (error) {
      try {
        await servers?.close(Date.now() + CLOSE_MS);
      } finally {
        if (directory !== undefined) await rm(directory, { recursive: true, force: true });
      }
      throw error;
    }
  }

  async close(): Promise<void> {
    try {
      this.client.close();
    } finally {
      try {
        await this.servers.close(Date.now() + CLOSE_MS);
      } finally {
        if (this.directory !== undefined) await rm(this.directory, { recursive: true, force: true });
      }
    }
  }
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

/**
 * AllowStream messages served as the stream service does (decode, decide each, encode the
 * answer), without a socket: the codec and the decision path get hot however slowly the
 * warm-up's own gRPC connection comes up on a busy machine.
 */
class StreamMessages {
  private readonly messages: Uint8Array[] = [];
  private readonly results: OutgoingResult[] = [];
  private next = 0;

  constructor(private readonly cluster: WarmUpCluster) {
    const { requests } = cluster;
    for (let from = 0; from + CALLERS <= requests.length; from += CALLERS) {
      this.messages.push(encodeStreamRequest(requests.slice(from, from + CALLERS).map(({ request, maxWaitMs }, i) => ({ id: i + 1, request, maxWaitMs, timestampMs: Date.now() }))));
    }
  }

  serveOne(): void {
    const results = this.results;
    results.length = 0;
    for (const item of decodeStreamRequest(this.messages[this.next++ % this.messages.length]!)) {
      try {
        const answer = this.cluster.decide(item.request, item.maxWaitMs);
        if (!(answer instanceof Promise)) results.push({ id: item.id, decision: answer, error: undefined });
      } catch (error) {
        results.push({ id: item.id, decision: undefined, error: itemError(error) });
      }
    }
    encodeStreamResponse(results, 1, 0);
  }
}
