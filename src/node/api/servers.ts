import * as grpc from '@grpc/grpc-js';
import { RingLimitError } from '../../common/errors.js';
import { ApiTokens, serverCredentials, type NodeTls } from '../transport/credentials.js';
import { MAX_GRPC_MESSAGE_BYTES } from '../transport/grpc-peer-transport.js';
import { CallerLedger, emptyCallerStats, type CallerLimits, type CallerStats } from './caller-ledger.js';
import { callerServerOptions } from './caller-bounds.js';
import { addEnvoyRateLimitService } from './envoy-service.js';
import { startHttpApi, type HttpApi, type HttpApiBackend } from './http-api.js';
import { addPublicApi } from './public-service.js';

/** The largest HTTP request body a node reads (a 10,000-request batch is about 1 MB of JSON). */
const HTTP_MAX_BODY_BYTES = 2 * 1024 * 1024;
/** How long a stop waits for gRPC calls to finish before closing them. */
const GRPC_SHUTDOWN_GRACE_MS = 1_000;

export interface ServersInit {
  host: string;
  /** The gRPC port (0: a free one); undefined: no gRPC server (a lone embedded node). */
  grpcPort: number | undefined;
  /** The HTTP API's port (0: a free one); undefined: none. */
  httpPort: number | undefined;
  tls: NodeTls | undefined;
  apiTokens: readonly string[];
  adminTokens: readonly string[];
  callerLimits: CallerLimits;
}

/**
 * A node's servers, created and started in one place: the gRPC server (the public API and
 * Envoy's service; the cluster mounts its peer protocol on it) and the HTTP API, both
 * answering through `backend`, both bounded by one caller ledger per server. They answer
 * from the start: a member still joining refuses decisions (no ring yet), so callers fail over.
 */
export class NodeServers {
  private constructor(
    /** undefined without a gRPC port. */
    readonly grpc: grpc.Server | undefined,
    readonly grpcAddress: string | undefined,
    private readonly http: HttpApi | undefined,
    private readonly callers: CallerLedger,
  ) {}

  static async start(backend: HttpApiBackend, init: ServersInit): Promise<NodeServers> {
    const callers = new CallerLedger(init.callerLimits);
    const tokens = new ApiTokens(init.apiTokens);
    const adminTokens = new ApiTokens(init.adminTokens);
    let server: grpc.Server | undefined;
    let grpcAddress: string | undefined;
    let http: HttpApi | undefined;
    try {
      if (init.grpcPort !== undefined) {
        server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_GRPC_MESSAGE_BYTES, ...callerServerOptions(callers) });
        addPublicApi(server, backend, tokens, adminTokens, callers);
        addEnvoyRateLimitService(server, backend, tokens);
        grpcAddress = `${init.host}:${await bindServer(server, `${init.host}:${init.grpcPort}`, serverCredentials(init.tls))}`;
      }
      if (init.httpPort !== undefined) {
        http = await startHttpApi(backend, { host: init.host, port: init.httpPort, maxBodyBytes: HTTP_MAX_BODY_BYTES, tls: init.tls, tokens, adminTokens });
      }
    } catch (error) {
      server?.forceShutdown();
      throw error;
    }
    return new NodeServers(server, grpcAddress, http, callers);
  }

  /** host:port of the HTTP API, when it serves one. */
  get httpAddress(): string | undefined {
    return this.http?.address;
  }

  /** A lone embedded node's: it has no gRPC port. */
  static readonly noCallers: Readonly<CallerStats> = emptyCallerStats();

  /** What callers of the gRPC port hold now, and what was refused them. */
  get callerStats(): CallerStats {
    return this.callers.stats;
  }

  /** Stops both: calls under way get until `deadlineMs` (wall clock; at most a second), then are closed. */
  async close(deadlineMs: number): Promise<void> {
    const server = this.grpc;
    const grpcClosed =
      server === undefined
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            const force = setTimeout(
              () => {
                server.forceShutdown();
                resolve();
              },
              Math.max(0, Math.min(GRPC_SHUTDOWN_GRACE_MS, deadlineMs - Date.now())),
            );
            server.tryShutdown(() => {
              clearTimeout(force);
              resolve();
            });
          });
    await Promise.all([grpcClosed, this.http?.close()]);
  }
}

function bindServer(server: grpc.Server, address: string, credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (error, port) => {
      if (error !== null) {
        const inUse = /EADDRINUSE|address already in use/i.test(error.message);
        reject(new RingLimitError(inUse ? 'FAILED_PRECONDITION' : 'UNAVAILABLE', `gRPC server cannot bind ${address}: ${inUse ? 'the port is in use' : error.message}`));
      } else {
        resolve(port);
      }
    });
  });
}
