import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { RingLimitError } from '../../common/errors.js';
import { ApiTokens, serverCredentials, type NodeTls } from '../transport/credentials.js';
import { MAX_GRPC_MESSAGE_BYTES } from '../transport/grpc-peer-transport.js';
import { CallerLedger, emptyCallerStats, type CallerLimits, type CallerStats } from './caller-ledger.js';
import { callerServerOptions } from './caller-bounds.js';
import { ConnectionGate, type GateStats } from '../transport/connection-gate.js';
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
  /**
   * A Unix socket to serve gRPC on instead of host:grpcPort (the address becomes `unix:<path>`):
   * the warm-up's private server. Its callers have no address, so the caller bounds count them
   * as one host: not for a public port.
   */
  grpcSocketPath?: string;
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
    private readonly gate: ConnectionGate,
    private readonly listener: NetServer | undefined,
  ) {}

  static async start(backend: HttpApiBackend, init: ServersInit): Promise<NodeServers> {
    const callers = new CallerLedger(init.callerLimits);
    // One ledger and one gate for every public surface: gRPC (the public API, Envoy's service, peer streams) and HTTP.
    const gate = new ConnectionGate(init.callerLimits);
    const tokens = new ApiTokens(init.apiTokens);
    const adminTokens = new ApiTokens(init.adminTokens);
    let server: grpc.Server | undefined;
    let listener: NetServer | undefined;
    let grpcAddress: string | undefined;
    let http: HttpApi | undefined;
    try {
      if (init.grpcPort !== undefined) {
        server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_GRPC_MESSAGE_BYTES, ...callerServerOptions(callers, { tokens, adminTokens, gate }) });
        gate.guard(server);
        addPublicApi(server, backend, tokens, adminTokens, callers);
        addEnvoyRateLimitService(server, backend, tokens, callers.largeBatches);
        // grpc-js gets only the connections the gate admits (its own bindAsync would accept every one).
        const injector = server.createConnectionInjector(serverCredentials(init.tls));
        listener = createServer((socket: Socket) => {
          if (gate.admit(socket)) injector.injectConnection(socket);
        });
        grpcAddress =
          init.grpcSocketPath === undefined
            ? `${init.host}:${await listen(listener, init.host, init.grpcPort, 'gRPC')}`
            : `unix:${await listenOnPath(listener, init.grpcSocketPath)}`;
      }
      if (init.httpPort !== undefined) {
        http = await startHttpApi(backend, { host: init.host, port: init.httpPort, maxBodyBytes: HTTP_MAX_BODY_BYTES, tls: init.tls, tokens, adminTokens, ledger: callers, gate });
      }
    } catch (error) {
      listener?.close();
      server?.forceShutdown();
      gate.closeAll();
      throw error;
    }
    return new NodeServers(server, grpcAddress, http, callers, gate, listener);
  }

  /** What the gate holds of the public ports' connections, and what it closed. */
  get connectionStats(): GateStats {
    return this.gate.stats;
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

  /** Stops both: calls under way get until `deadlineMs` (wall clock; at most a second), then are closed — and so is every connection left (one mid-handshake would keep the process alive). */
  async close(deadlineMs: number): Promise<void> {
    this.listener?.close();
    const graceMs = Math.max(0, Math.min(GRPC_SHUTDOWN_GRACE_MS, deadlineMs - Date.now()));
    // Past the grace, every connection left goes: those still in their TLS handshake are no server's to close, and would hold the stop (and the process) open.
    const closeLeft = setTimeout(() => this.gate.closeAll(), graceMs);
    const server = this.grpc;
    const grpcClosed =
      server === undefined
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            const force = setTimeout(() => {
              server.forceShutdown();
              resolve();
            }, graceMs);
            server.tryShutdown(() => {
              clearTimeout(force);
              resolve();
            });
          });
    await Promise.all([grpcClosed, this.http?.close()]);
    clearTimeout(closeLeft);
    this.gate.closeAll();
  }
}

/** Listens on the Unix socket `path`; resolves with it. */
function listenOnPath(server: NetServer, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const failed = (error: Error): void => reject(new RingLimitError('UNAVAILABLE', `gRPC server cannot listen on ${path}: ${error.message}`));
    server.once('error', failed);
    server.listen(path, () => {
      server.off('error', failed);
      resolve(path);
    });
  });
}

/** Listens on host:port; resolves with the port bound. */
export function listen(server: NetServer, host: string, port: number, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const failed = (error: Error): void => {
      const inUse = /EADDRINUSE|address already in use/i.test(error.message);
      reject(new RingLimitError(inUse ? 'FAILED_PRECONDITION' : 'UNAVAILABLE', `${what} server cannot bind ${host}:${port}: ${inUse ? 'the port is in use' : error.message}`));
    };
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
