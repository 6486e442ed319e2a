import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { RingLimitError, type ErrorCode } from '../../common/errors.js';
import type { PublicApiBackend } from './backend.js';
import type { ApiTokens, NodeTls } from '../transport/credentials.js';
import { CallerLedger, callerLimitsDefaults } from './caller-ledger.js';
import { ConnectionGate } from '../transport/connection-gate.js';
import { HttpCall, peerOfRequest } from './http-call.js';
import { batchBudgetDefaults } from './batch-budget.js';
import { RawJson, allowBatch, mayTakeLarge } from './http-batch.js';
import { HttpError, decideOne, decision, parseJson, toRequest } from './http-json.js';

/** What the HTTP API needs beyond the gRPC API's backend: readiness and the cluster view. */
export interface HttpApiBackend extends PublicApiBackend {
  ready(): { ready: boolean; reason: string };
  cluster(): object;
  /** The Prometheus exposition. */
  metrics(): Promise<{ contentType: string; text: string }>;
}

export interface HttpApiInit {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** A request body larger than this is refused with 413 before it is read further. */
  maxBodyBytes: number;
  /** With TLS, HTTPS with client certificates required (as the gRPC port), except on the probes /healthz and /readyz. */
  tls: NodeTls | undefined;
  /** Bearer tokens for /v1/*; the health probes need none. */
  tokens: ApiTokens;
  /** Bearer tokens for /v1/admin/* (none: those endpoints refuse every call). */
  adminTokens: ApiTokens;
  /** The node's caller ledger, shared with the gRPC port: every authorized request is a call on it (default: one of its own). */
  ledger?: CallerLedger;
  /** The node's connection gate, shared with the gRPC port (default: one of its own). */
  gate?: ConnectionGate;
}

type BoundedInit = HttpApiInit & { ledger: CallerLedger; gate: ConnectionGate };

export interface HttpApi {
  /** host:port it listens on. */
  readonly address: string;
  close(): Promise<void>;
}

const STATUS_OF: Partial<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: 400,
  UNAUTHENTICATED: 401,
  FAILED_PRECONDITION: 409,
  RESOURCE_EXHAUSTED: 429,
  UNAVAILABLE: 503,
  DEADLINE_EXCEEDED: 504,
};


/** How often Node checks its connections against headersTimeout and requestTimeout (its default, 30 s, let slow senders outlive both). */
const CONNECTIONS_CHECKING_INTERVAL_MS = 1_000;

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, error: unknown): void {
  if (error instanceof HttpError) return send(res, error.status, { code: error.code, field: error.field, message: error.message });
  const code = error instanceof RingLimitError ? error.code : 'INTERNAL';
  send(res, STATUS_OF[code] ?? 500, { code, field: error instanceof RingLimitError ? (error.field ?? '') : '', message: error instanceof Error ? error.message : 'internal error' });
}


/** The body, at most `max` bytes: 413 past it. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) {
      reject(new HttpError(413, 'RESOURCE_EXHAUSTED', 'body', `the body may be at most ${max} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        reject(new HttpError(413, 'RESOURCE_EXHAUSTED', 'body', `the body may be at most ${max} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}


const ADMIN_ROUTES: Record<string, string> = { '/v1/admin/inspect': 'POST', '/v1/admin/reset': 'POST', '/v1/admin/set': 'POST' };

/** Why a request's headers are refused (undefined: they carry the token its path needs). */
function refusal(init: BoundedInit, admin: boolean, authorization: string | undefined): string | undefined {
  if (!admin) return init.tokens.allowsHeader(authorization) ? undefined : 'a bearer token this node accepts is required (authorization: Bearer <token>)';
  if (!init.adminTokens.required) return 'admin calls are off: start the node with --admin-token-file';
  return init.adminTokens.allowsHeader(authorization) ? undefined : 'an admin token this node accepts is required (authorization: Bearer <token>)';
}

/** Inspect, reset or set a key at its owner (the admin token checked): the caller named in the logs by token and address. */
async function adminOnKey(backend: PublicApiBackend, init: BoundedInit, req: IncomingMessage, body: unknown, path: string): Promise<object> {
  const authorization = req.headers.authorization;
  const op = path === '/v1/admin/inspect' ? 'inspect' : path === '/v1/admin/reset' ? 'reset' : 'set';
  let remaining: unknown;
  let rest: unknown = body;
  if (op === 'set' && typeof body === 'object' && body !== null && !Array.isArray(body)) ({ remaining, ...rest } = body as { remaining?: unknown });
  if (op === 'set' && typeof remaining !== 'number') throw new HttpError(400, 'INVALID_ARGUMENT', 'remaining', 'remaining must be a number');
  const { request } = toRequest(rest, 'body');
  const by = `${init.adminTokens.identify(authorization) ?? 'admin'} from ${req.socket.remoteAddress ?? '?'} (HTTP)`;
  return decision(await backend.admin(op, request, op === 'set' ? (remaining as number) : undefined, by));
}



/**
 * The HTTP API of a node, on Node's own http module (docs/decisions/0004): the same
 * decisions, limits and typed errors as the gRPC API, in JSON.
 *
 *   POST /v1/allow         a request → its decision
 *   POST /v1/allow-batch   { requests: [...] } (at most 10,000) → { results: [{ decision } | { error }] }
 *   GET  /v1/cluster       members, states, ownership shares, policy version
 *   POST /v1/admin/inspect | /v1/admin/reset | /v1/admin/set (admin token)
 *                          a request (and for set, "remaining") → the key at its owner
 *   GET  /metrics          Prometheus metrics (metrics.ts)
 *   GET  /healthz          200 while the process serves
 *   GET  /readyz           200 once joined, active and owning keys; 503 before, and while draining
 *
 * A bad request gets 400 with { code, field, message } and changes nothing. With TLS the port
 * asks every client for a certificate; one the CA did not sign, or none, gets only the probes
 * (the kubelet and a container's health check present none): anything else is 403, no body.
 */
export async function startHttpApi(backend: HttpApiBackend, options: HttpApiInit): Promise<HttpApi> {
  const init: BoundedInit = { ...options, ledger: options.ledger ?? new CallerLedger(callerLimitsDefaults), gate: options.gate ?? new ConnectionGate(callerLimitsDefaults) };
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    handleRequest(backend, init, req, res).catch((error: unknown) => {
      if (!res.headersSent) sendError(res, error);
      else res.destroy();
    });
  };
  // With TLS, a client without a certificate the CA signed completes the handshake, for the probes only (see handleRequest).
  const timeouts = { connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS, headersTimeout: 10_000, requestTimeout: 30_000 };
  const server: Server = init.tls === undefined ? createHttpServer(timeouts, handle) : createHttpsServer({ ...timeouts, cert: init.tls.cert, key: init.tls.key, ca: init.tls.ca, requestCert: true, rejectUnauthorized: false }, handle);
  // Bounded before a byte is read, with the gRPC port's connections: see ConnectionGate.
  server.prependListener('connection', (socket: Socket) => void init.gate.admit(socket));
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.maxHeadersCount = 100;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(init.port, init.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  return {
    address: `${init.host}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handleRequest(backend: HttpApiBackend, init: BoundedInit, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const method = req.method ?? 'GET';
  const probe = path === '/healthz' || path === '/readyz';
  if (init.tls !== undefined && !probe && !(req.socket instanceof TLSSocket && req.socket.authorized)) {
    // No client certificate the CA signed: refused, saying nothing (not even whether the path exists).
    res.writeHead(403, { 'content-length': 0, connection: 'close' });
    res.end();
    return;
  }
  if (probe) {
    if (method !== 'GET') throw new HttpError(405, 'INVALID_ARGUMENT', 'method', `${path} takes GET`);
    if (path === '/healthz') return send(res, 200, { status: 'alive', nodeId: backend.nodeId });
    const readiness = backend.ready();
    return send(res, readiness.ready ? 200 : 503, readiness);
  }
  const routes: Record<string, string> = { '/v1/allow': 'POST', '/v1/allow-batch': 'POST', '/v1/cluster': 'GET', '/metrics': 'GET', ...ADMIN_ROUTES };
  const expected = path === undefined ? undefined : routes[path];
  if (expected === undefined) throw new HttpError(404, 'INVALID_ARGUMENT', 'path', `no such endpoint: ${path ?? ''}`);
  if (method !== expected) throw new HttpError(405, 'INVALID_ARGUMENT', 'method', `${path} takes ${expected}`);
  const admin = path !== undefined && path in ADMIN_ROUTES;
  // Credentials on the headers, before the request takes a slot or a byte of its body is read.
  const peer = peerOfRequest(req);
  const refused = refusal(init, admin, req.headers.authorization);
  if (refused !== undefined) {
    init.gate.strike(peer);
    throw new RingLimitError('UNAUTHENTICATED', refused);
  }
  init.gate.trust(peer);
  // One ledger with the gRPC port: the request runs on its connection's share, or waits for room, or is refused.
  const call = new HttpCall(init.ledger, req, res);
  const connection = await call.open();
  if (path === '/v1/cluster') return sendCounted(call, res, 200, backend.cluster());
  if (path === '/metrics') {
    const { contentType, text } = await backend.metrics();
    call.answering(Buffer.byteLength(text));
    res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
    res.end(text);
    return;
  }
  // A connection whose last request was a large batch, while large batches are past their share: refused unread.
  if (!init.ledger.mayRead(connection)) throw new RingLimitError('RESOURCE_EXHAUSTED', `busy with large batches: retry, or send at most ${batchBudgetDefaults.smallBatchItems} requests per batch`);
  const read = async (): Promise<Buffer> => {
    const bytes = await readBody(req, init.maxBodyBytes);
    call.bodyRead();
    return bytes;
  };
  if (path === '/v1/allow-batch') {
    // A large batch the node has no room for is refused before its body is read (which the connection's close then drops).
    if (!mayTakeLarge(init.ledger, Number(req.headers['content-length'] ?? 0))) {
      res.setHeader('connection', 'close');
      res.once('finish', () => req.socket.destroy());
    }
    return allowBatch(backend, init.ledger, connection, Number(req.headers['content-length'] ?? 0), read, (status, body) => sendCounted(call, res, status, body), () => req.socket.destroyed);
  }
  const bytes = await read();
  if (admin) return sendCounted(call, res, 200, await adminOnKey(backend, init, req, parseJson(bytes), path!));
  connection.lastRequestLarge = false;
  init.ledger.largeBatches.singleCall();
  return sendCounted(call, res, 200, decision(await decideOne(backend, parseJson(bytes), 'body')));
}

/** Sends a JSON answer, counted as unsent on the ledger until Node has handed it to the socket. */
function sendCounted(call: HttpCall, res: ServerResponse, status: number, body: unknown): void {
  // A batch's answer comes encoded (in slices); anything else is small.
  const bytes = body instanceof RawJson ? body.bytes : Buffer.from(JSON.stringify(body));
  call.answering(bytes.length);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': bytes.length });
  res.end(bytes);
}
