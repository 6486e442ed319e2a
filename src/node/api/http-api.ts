import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { TLSSocket } from 'node:tls';
import { RingLimitError, type ErrorCode } from '../../common/errors.js';
import type { RateLimitRequest, Reservation } from '../../limiter/types.js';
import { MAX_BATCH_ITEMS, itemError, type PublicApiBackend } from './backend.js';
import type { ApiTokens, NodeTls } from '../transport/credentials.js';

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
}

export interface HttpApi {
  /** host:port it listens on. */
  readonly address: string;
  close(): Promise<void>;
}

const STATUS_OF: Partial<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: 400,
  UNAUTHENTICATED: 401,
  RESOURCE_EXHAUSTED: 429,
  UNAVAILABLE: 503,
  DEADLINE_EXCEEDED: 504,
};

/** The request fields the API takes: those of RateLimitRequest, and maxWaitMs for a reservation. */
const REQUEST_FIELDS = new Set(['key', 'action', 'limit', 'windowMs', 'calendar', 'timeZone', 'weight', 'cost', 'algorithm', 'burst', 'global', 'group', 'maxWaitMs']);

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

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

/** The body, at most `max` bytes, as JSON: 413 past it, 400 when it is not JSON. */
function readJson(req: IncomingMessage, max: number): Promise<unknown> {
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
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(new HttpError(400, 'INVALID_ARGUMENT', 'body', 'the body must be JSON'));
      }
    });
    req.on('error', reject);
  });
}

/** A JSON request as the core's request and the reservation bound: unknown fields are refused, the limiter checks the rest. */
function toRequest(value: unknown, path: string): { request: RateLimitRequest; maxWaitMs: number | undefined } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(400, 'INVALID_ARGUMENT', path, `${path} must be a JSON object`);
  for (const name of Object.keys(value)) {
    if (!REQUEST_FIELDS.has(name)) throw new HttpError(400, 'INVALID_ARGUMENT', name, `unknown field ${JSON.stringify(name)}; expected ${[...REQUEST_FIELDS].join(', ')}`);
  }
  const { maxWaitMs, ...request } = value as RateLimitRequest & { maxWaitMs?: unknown };
  if (maxWaitMs !== undefined && typeof maxWaitMs !== 'number') throw new HttpError(400, 'INVALID_ARGUMENT', 'maxWaitMs', 'maxWaitMs must be a number');
  return { request, maxWaitMs };
}

const ADMIN_ROUTES: Record<string, string> = { '/v1/admin/inspect': 'POST', '/v1/admin/reset': 'POST', '/v1/admin/set': 'POST' };

/** Inspect, reset or set a key at its owner: an admin token, then the request; the caller named in the logs by token and address. */
async function adminOnKey(backend: PublicApiBackend, init: HttpApiInit, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const authorization = req.headers.authorization;
  if (!init.adminTokens.required) throw new RingLimitError('UNAUTHENTICATED', 'admin calls are off: start the node with --admin-token-file');
  if (!init.adminTokens.allowsHeader(authorization)) throw new RingLimitError('UNAUTHENTICATED', 'an admin token this node accepts is required (authorization: Bearer <token>)');
  const body = await readJson(req, init.maxBodyBytes);
  const op = path === '/v1/admin/inspect' ? 'inspect' : path === '/v1/admin/reset' ? 'reset' : 'set';
  let remaining: unknown;
  let rest: unknown = body;
  if (op === 'set' && typeof body === 'object' && body !== null && !Array.isArray(body)) ({ remaining, ...rest } = body as { remaining?: unknown });
  if (op === 'set' && typeof remaining !== 'number') throw new HttpError(400, 'INVALID_ARGUMENT', 'remaining', 'remaining must be a number');
  const { request } = toRequest(rest, 'body');
  const by = `${init.adminTokens.identify(authorization) ?? 'admin'} from ${req.socket.remoteAddress ?? '?'} (HTTP)`;
  send(res, 200, decision(await backend.admin(op, request, op === 'set' ? (remaining as number) : undefined, by)));
}

const decision = (r: Reservation): object => ({ allowed: r.allowed, limit: r.limit, remaining: r.remaining, resetAtMs: r.resetAtMs, retryAfterMs: r.retryAfterMs, waitMs: r.waitMs });

async function decideOne(backend: PublicApiBackend, value: unknown, path: string): Promise<Reservation> {
  const { request, maxWaitMs } = toRequest(value, path);
  return backend.decide(request, maxWaitMs);
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
export async function startHttpApi(backend: HttpApiBackend, init: HttpApiInit): Promise<HttpApi> {
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    handleRequest(backend, init, req, res).catch((error: unknown) => {
      if (!res.headersSent) sendError(res, error);
      else res.destroy();
    });
  };
  // With TLS, a client without a certificate the CA signed completes the handshake, for the probes only (see handleRequest).
  const server: Server = init.tls === undefined ? createHttpServer(handle) : createHttpsServer({ cert: init.tls.cert, key: init.tls.key, ca: init.tls.ca, requestCert: true, rejectUnauthorized: false }, handle);
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

async function handleRequest(backend: HttpApiBackend, init: HttpApiInit, req: IncomingMessage, res: ServerResponse): Promise<void> {
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
  if (path !== undefined && path in ADMIN_ROUTES) return adminOnKey(backend, init, req, res, path);
  if (!init.tokens.allowsHeader(req.headers.authorization)) throw new RingLimitError('UNAUTHENTICATED', 'a bearer token this node accepts is required (authorization: Bearer <token>)');
  if (path === '/v1/cluster') return send(res, 200, backend.cluster());
  if (path === '/metrics') {
    const { contentType, text } = await backend.metrics();
    res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
    res.end(text);
    return;
  }
  const body = await readJson(req, init.maxBodyBytes);
  if (path === '/v1/allow') return send(res, 200, decision(await decideOne(backend, body, 'body')));
  const requests = (body as { requests?: unknown } | null)?.requests;
  if (typeof body !== 'object' || body === null || !Array.isArray(requests)) throw new HttpError(400, 'INVALID_ARGUMENT', 'requests', 'the body must be { "requests": [ ... ] }');
  if (requests.length > MAX_BATCH_ITEMS) throw new HttpError(400, 'INVALID_ARGUMENT', 'requests', `at most ${MAX_BATCH_ITEMS} requests per batch`);
  const results = await Promise.all(
    requests.map((item, i) =>
      decideOne(backend, item, `requests[${i}]`).then(
        (r) => ({ decision: decision(r) }),
        (error: unknown) => ({ error: error instanceof HttpError ? { code: error.code, field: error.field, message: error.message } : itemError(error) }),
      ),
    ),
  );
  send(res, 200, { results });
}
