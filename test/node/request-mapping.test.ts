import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RateLimitRequest, Reservation } from '../../src/limiter/types.js';
import { decodeAllowRequest, decodeSetRemainingRequest, encodeAllowRequest, encodeSetRemainingRequest } from '../../src/node/api/allow-codec.js';
import { callerServerOptions } from '../../src/node/api/caller-bounds.js';
import { CallerLedger, callerLimitsDefaults } from '../../src/node/api/caller-ledger.js';
import { startHttpApi, type HttpApi, type HttpApiBackend } from '../../src/node/api/http-api.js';
import { rateLimiterClientConstructor, rateLimiterService } from '../../src/node/api/proto.js';
import { addPublicApi } from '../../src/node/api/public-service.js';
import { decodeBatchRequest, decodeStreamRequest, encodeStreamRequest } from '../../src/node/api/stream-codec.js';
import { RingLimitClient } from '../../src/node/client/client.js';
import { ApiTokens } from '../../src/node/transport/credentials.js';

/**
 * One request-field mapping per direction and format: a request with every field set
 * reaches the node's backend the same through every way in — the stream client, its admin
 * calls, a generated gRPC client (unary Allow, AllowBatch, admin calls: what other
 * languages send) and the HTTP API's JSON.
 */

const ADMIN = 'admin-token-0123456789abcdef';
const MAX_WAIT_MS = 1_500;

const everyField: RateLimitRequest = {
  key: 'ключ/42',
  action: 'checkout',
  limit: 250,
  windowMs: 60_000,
  calendar: 'day',
  timeZone: 'Europe/Paris',
  group: 'gold',
  global: true,
  burst: 40,
  weight: 2.5,
  cost: 3,
  algorithm: 'fixed-window',
};
const { windowMs: _window, ...calendarInsteadOfWindow } = everyField;
const { calendar: _calendar, timeZone: _timeZone, ...windowed } = everyField;
/** cost 0 peeks: it must arrive as 0, not as unset (1). */
const peek: RateLimitRequest = { ...windowed, cost: 0 };
const REQUESTS: [string, RateLimitRequest][] = [
  ['every field', everyField],
  ['a calendar instead of a window', calendarInsteadOfWindow],
  ['cost 0', peek],
];

interface Seen {
  decided: { request: RateLimitRequest; maxWaitMs: number | undefined }[];
  admin: { op: string; request: RateLimitRequest; remaining: number | undefined }[];
}

const answer: Reservation = { allowed: true, limit: 250, remaining: 7, resetAtMs: 1_700_000_000_000.5, retryAfterMs: 0, waitMs: 12.5 };

/** A backend that decides nothing: it records what reached it. */
function recordingBackend(seen: Seen): HttpApiBackend {
  return {
    nodeId: 'n0',
    decide: (request, maxWaitMs) => {
      seen.decided.push({ request, maxWaitMs });
      return answer;
    },
    admin: (op, request, remaining) => {
      seen.admin.push({ op, request, remaining });
      return Promise.resolve(answer);
    },
    health: () => ({ nodeId: 'n0', status: 'active', owners: ['n0'], members: 1 }),
    members: () => ({ owners: [], placement: '', ring: 0 }),
    ringDigest: () => 0,
    recordCallerTime: () => undefined,
    setPolicies: () => ({ version: 0, digest: '', document: 'null' }),
    getPolicies: () => ({ version: 0, digest: '', document: 'null' }),
    setLoadFactor: () => 1,
    envoy: () => {
      throw new Error('not served here');
    },
    ready: () => ({ ready: true, reason: '' }),
    cluster: () => ({}),
    metrics: () => Promise.resolve({ contentType: 'text/plain', text: '' }),
  };
}

type Unary = (request: object, metadata: grpc.Metadata, callback: (error: grpc.ServiceError | null, response?: Record<string, unknown>) => void) => void;

describe('a request with every field set reads the same through every path', () => {
  const seen: Seen = { decided: [], admin: [] };
  let server: grpc.Server;
  let http: HttpApi;
  let address = '';
  let client: RingLimitClient;
  let generated: grpc.Client & Record<'allow' | 'allowBatch' | 'inspect' | 'setRemaining', Unary>;

  beforeAll(async () => {
    const backend = recordingBackend(seen);
    const ledger = new CallerLedger(callerLimitsDefaults);
    const tokens = new ApiTokens([]);
    const adminTokens = new ApiTokens([ADMIN]);
    server = new grpc.Server(callerServerOptions(ledger));
    addPublicApi(server, backend, tokens, adminTokens, ledger);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, p) => (error === null ? resolve(p) : reject(error))));
    address = `127.0.0.1:${port}`;
    http = await startHttpApi(backend, { host: '127.0.0.1', port: 0, maxBodyBytes: 1 << 20, tls: undefined, tokens, adminTokens });
    client = new RingLimitClient({ nodes: [address], ringAware: false });
    const Generated = rateLimiterClientConstructor();
    generated = new Generated(address, grpc.credentials.createInsecure()) as unknown as typeof generated;
  });
  afterAll(async () => {
    client?.close();
    generated?.close();
    await http?.close();
    server?.forceShutdown();
  });

  const adminMetadata = (): grpc.Metadata => {
    const m = new grpc.Metadata();
    m.set('authorization', `Bearer ${ADMIN}`);
    return m;
  };
  const unary = (method: 'allow' | 'allowBatch' | 'inspect' | 'setRemaining', message: object): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => generated[method](message, adminMetadata(), (error, response) => (error === null ? resolve(response!) : reject(error))));
  const post = async (path: string, body: object): Promise<Record<string, unknown>> => {
    const res = await fetch(`http://${http.address}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` }, body: JSON.stringify(body) });
    expect(res.status).toBe(200);
    return (await res.json()) as Record<string, unknown>;
  };
  /** What reached the backend since the last look. */
  const decided = () => seen.decided.splice(0);
  const admin = () => seen.admin.splice(0);

  it('a request the codec cannot write (a number for a key) fails alone with INVALID_ARGUMENT; the rest of its message is answered', async () => {
    const [bad, good, badAdmin] = await Promise.allSettled([
      client.allow({ ...everyField, key: 42 as unknown as string }),
      client.allow(everyField),
      client.inspect({ ...everyField, group: 7 as unknown as string }, { adminToken: ADMIN }),
    ]);
    expect(bad).toMatchObject({ status: 'rejected', reason: { code: 'INVALID_ARGUMENT', field: 'key' } });
    expect(good).toEqual({ status: 'fulfilled', value: answer });
    expect(badAdmin).toMatchObject({ status: 'rejected', reason: { code: 'INVALID_ARGUMENT', field: 'group' } });
    expect(decided()).toEqual([{ request: everyField, maxWaitMs: undefined }]);
    expect(admin()).toEqual([]);
  });

  for (const [name, request] of REQUESTS) {
    it(`${name}: the codec, both ways, agrees with the generated one`, () => {
      const Allow = rateLimiterService()['Allow']!;
      expect(decodeAllowRequest(encodeAllowRequest(request)).request).toEqual(request);
      expect(decodeAllowRequest(Allow.requestSerialize({ ...request, maxWaitMs: MAX_WAIT_MS }))).toMatchObject({ request, maxWaitMs: MAX_WAIT_MS });
      expect(Allow.requestDeserialize(encodeAllowRequest(request))).toMatchObject(request);
      expect(decodeSetRemainingRequest(encodeSetRemainingRequest(request, 7))).toEqual({ request: expect.objectContaining(request) as unknown, remaining: 7 });
      const [streamed] = decodeStreamRequest(encodeStreamRequest([{ id: 9, request, maxWaitMs: MAX_WAIT_MS, timestampMs: 5 }]));
      expect(streamed).toEqual({ id: 9, request, maxWaitMs: MAX_WAIT_MS, timestampMs: 5 });
      const batch = rateLimiterService()['AllowBatch']!.requestSerialize({ requests: [request, request] });
      expect(decodeBatchRequest(batch).map((item) => item.request)).toEqual([request, request]);
    });

    it(`${name}: RingLimitClient's stream and admin calls`, async () => {
      expect(await client.allow(request)).toEqual(answer);
      expect(await client.reserve(request, { maxWaitMs: MAX_WAIT_MS })).toEqual(answer);
      expect(decided()).toEqual([
        { request, maxWaitMs: undefined },
        { request, maxWaitMs: MAX_WAIT_MS },
      ]);
      expect(await client.inspect(request, { adminToken: ADMIN })).toEqual(answer);
      expect(await client.reset(request, { adminToken: ADMIN })).toEqual(answer);
      expect(await client.setRemaining(request, 7, { adminToken: ADMIN })).toEqual(answer);
      expect(admin()).toEqual([
        { op: 'inspect', request, remaining: undefined },
        { op: 'reset', request, remaining: undefined },
        { op: 'set', request, remaining: 7 },
      ]);
    });

    it(`${name}: a generated gRPC client (other languages): Allow, AllowBatch, Inspect, SetRemaining`, async () => {
      expect(await unary('allow', { ...request, maxWaitMs: MAX_WAIT_MS })).toEqual(answer);
      const batch = await unary('allowBatch', { requests: [request] });
      expect(batch).toEqual({ results: [{ decision: answer, result: 'decision' }] });
      expect(decided()).toEqual([
        { request, maxWaitMs: MAX_WAIT_MS },
        { request, maxWaitMs: undefined },
      ]);
      expect(await unary('inspect', request)).toEqual(answer);
      expect(await unary('setRemaining', { request, remaining: 7 })).toEqual(answer);
      expect(admin()).toEqual([
        { op: 'inspect', request, remaining: undefined },
        { op: 'set', request, remaining: 7 },
      ]);
    });

    it(`${name}: the HTTP API's JSON`, async () => {
      expect(await post('/v1/allow', { ...request, maxWaitMs: MAX_WAIT_MS })).toEqual(answer);
      expect(await post('/v1/allow-batch', { requests: [request] })).toEqual({ results: [{ decision: answer }] });
      expect(decided()).toEqual([
        { request, maxWaitMs: MAX_WAIT_MS },
        { request, maxWaitMs: undefined },
      ]);
      expect(await post('/v1/admin/set', { ...request, remaining: 7 })).toEqual(answer);
      expect(admin()).toEqual([{ op: 'set', request, remaining: 7 }]);
    });
  }
});
