import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { RingLimitClient } from '../../src/node/client/client.js';
import { rateLimiterClientConstructor } from '../../src/node/api/proto.js';
import type { AdminRecord, RingLimitNode } from '../../src/node/node.js';
import { decodeFrame, encodeFrame } from '../../src/node/wire/codec.js';
import { FrameType, PEER_PROTOCOL_VERSION, type ForwardItem } from '../../src/node/wire/frames.js';
import { encodeMsgpack } from '../../src/node/wire/msgpack.js';
import { startCluster, stopAll, unaryCall, waitFor } from './helpers.js';

const request = (key: string) => ({ key, action: 'login', limit: 10, windowMs: 86_400_000, algorithm: 'token-bucket' as const });

describe('operators on a cluster: inspect, reset and set a key at its owner', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
  });

  it('through every node: set and reset reach the owner, inspect reads it and consumes nothing, and each is recorded with who asked', async () => {
    // splitShareMs 0: the survivors decide alone at once. By default they would count the dead
    // owner as out of reach (a split they cannot tell from a crash) and spend 2/3 of what remains.
    nodes = await startCluster(3, { replicationDelayMs: 5, splitShareMs: 0 });
    const [a, b, c] = nodes as [RingLimitNode, RingLimitNode, RingLimitNode];
    let key = '';
    for (let i = 0; i < 10_000 && key === ''; i++) if (a.ownerOf(`user-${i}`, 'login') === 'n2') key = `user-${i}`;
    const records: AdminRecord[] = [];
    a.on('admin', (r) => records.push(r));

    for (let i = 0; i < 10; i++) await b.allow(request(key));
    expect((await b.allow(request(key))).allowed).toBe(false);
    // a does not own the key: the operation goes to c, the owner.
    expect((await a.inspect(request(key), { by: 'support:alice' })).remaining).toBe(0);
    expect((await a.setRemaining(request(key), 3, { by: 'support:alice' })).remaining).toBe(3);
    expect((await b.inspect(request(key))).remaining).toBe(3);
    expect((await c.inspect(request(key))).remaining).toBe(3);
    const admitted = [];
    for (let i = 0; i < 4; i++) admitted.push((await b.allow(request(key))).allowed);
    expect(admitted).toEqual([true, true, true, false]);
    expect((await a.reset(request(key), { by: 'support:bob' })).remaining).toBe(10);
    expect((await c.allow(request(key))).remaining).toBe(9);
    expect(records.map((r) => `${r.op}:${r.by}:${r.key === key}:${r.result.remaining}`)).toEqual([
      'inspect:support:alice:true:0',
      'set:support:alice:true:3',
      'reset:support:bob:true:10',
    ]);
    // Bad values are refused, and change nothing.
    await expect(a.setRemaining(request(key), 11)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'remaining' });
    await expect(a.setRemaining(request(key), -1)).rejects.toMatchObject({ field: 'remaining' });
    await expect(a.inspect({ ...request(key), key: '' })).rejects.toMatchObject({ field: 'key' });
    expect((await b.inspect(request(key))).remaining).toBe(9);
  });

  it('a set replicates: when the owner dies, its replica continues from the value set', async () => {
    // splitShareMs 0: the survivors decide alone at once. By default they would count the dead
    // owner as out of reach (a split they cannot tell from a crash) and spend 2/3 of what remains.
    nodes = await startCluster(3, { replicationDelayMs: 5, splitShareMs: 0 });
    const [a, b, c] = nodes as [RingLimitNode, RingLimitNode, RingLimitNode];
    let key = '';
    for (let i = 0; i < 10_000 && key === ''; i++) if (a.ownerOf(`user-${i}`, 'login') === 'n2') key = `user-${i}`;
    await a.setRemaining(request(key), 2);
    await new Promise((r) => setTimeout(r, 100)); // a few replication delays
    await c.stop({ graceful: false });
    await waitFor(() => a.ownerOf(key, 'login') !== 'n2' && b.ownerOf(key, 'login') !== 'n2', 10_000, 'the owner to be declared failed');
    const admitted = [];
    for (let i = 0; i < 3; i++) admitted.push((await a.allow(request(key))).allowed);
    expect(admitted).toEqual([true, true, false]);
  });
});

describe('operators over gRPC and HTTP: an admin token, then the key at its owner', () => {
  let nodes: RingLimitNode[] = [];
  const clients: grpc.Client[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await stopAll(nodes);
  });
  const ADMIN = 'admin-token-0123456789abcdef';
  type Answer = { allowed: boolean; remaining: number; limit: number };
  const rpc = async (node: RingLimitNode, method: 'inspect' | 'reset' | 'setRemaining', request: object, token?: string) => {
    const { error, response } = await unaryCall<Answer>(clients, rateLimiterClientConstructor(), node, method, request, token);
    return { error, answer: response };
  };
  const http = async (node: RingLimitNode, path: string, body: object, token?: string): Promise<{ status: number; body: Answer & { code?: string; field?: string } }> => {
    const res = await fetch(`http://${node.httpAddress!}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Answer & { code?: string; field?: string } };
  };

  it('Inspect, Reset and SetRemaining (gRPC) and /v1/admin/* (HTTP) act at the owner; without the admin token they change nothing; each is recorded with the caller', async () => {
    nodes = await startCluster(3, { adminTokens: [ADMIN], httpPort: 0 });
    const [a, b] = nodes as [RingLimitNode, RingLimitNode];
    const records: AdminRecord[] = [];
    a.on('admin', (r) => records.push(r));
    const key = { key: 'user-7', action: 'login', limit: 10, windowMs: 86_400_000 };
    for (let i = 0; i < 4; i++) await b.allow(key);
    expect((await rpc(a, 'inspect', key, ADMIN)).answer).toMatchObject({ remaining: 6, limit: 10 });
    expect((await rpc(a, 'setRemaining', { request: key, remaining: 1 }, ADMIN)).answer).toMatchObject({ remaining: 1 });
    expect((await rpc(a, 'reset', key)).error?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect((await rpc(a, 'reset', key, 'wrong-token-0123456789')).error?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect((await b.inspect(key)).remaining).toBe(1);
    expect((await rpc(a, 'setRemaining', { request: key, remaining: 11 }, ADMIN)).error?.code).toBe(grpc.status.INVALID_ARGUMENT);

    expect(await http(a, '/v1/admin/reset', key)).toMatchObject({ status: 401 });
    expect(await http(a, '/v1/admin/reset', key, ADMIN)).toMatchObject({ status: 200, body: { remaining: 10 } });
    expect(await http(a, '/v1/admin/set', { ...key, remaining: 2 }, ADMIN)).toMatchObject({ status: 200, body: { remaining: 2 } });
    expect(await http(a, '/v1/admin/set', { ...key, remaining: 'x' }, ADMIN)).toMatchObject({ status: 400, body: { field: 'remaining' } });
    expect(await http(a, '/v1/admin/inspect', { ...key, extra: 1 }, ADMIN)).toMatchObject({ status: 400, body: { field: 'extra' } });
    expect(await http(a, '/v1/admin/inspect', key, ADMIN)).toMatchObject({ status: 200, body: { remaining: 2 } });
    expect((await b.inspect(key)).remaining).toBe(2);

    expect(records.map((r) => r.op)).toEqual(['inspect', 'set', 'reset', 'set', 'inspect']);
    expect(records[0]!.by).toMatch(/^token [0-9a-f]{8} from .+ \(gRPC\)$/);
    expect(records[2]!.by).toMatch(/^token [0-9a-f]{8} from .+ \(HTTP\)$/);
    expect(records.map((r) => r.by).join(' ')).not.toContain(ADMIN);
  });

  it('RingLimitClient: inspect, setRemaining and reset with an admin token, carried to the owner; typed errors otherwise', async () => {
    nodes = await startCluster(3, { adminTokens: [ADMIN] });
    const [a, b, c] = nodes as [RingLimitNode, RingLimitNode, RingLimitNode];
    const records: AdminRecord[] = [];
    a.on('admin', (r) => records.push(r));
    const key = { key: 'user-9', action: 'login', limit: 10, calendar: 'day' as const, timeZone: 'Europe/Paris' };
    for (let i = 0; i < 3; i++) await c.allow(key);
    const client = new RingLimitClient({ nodes: [a.grpcAddress!] });
    try {
      expect(await client.inspect(key, { adminToken: ADMIN })).toMatchObject({ remaining: 7, limit: 10 });
      expect(await client.setRemaining(key, 1, { adminToken: ADMIN })).toMatchObject({ remaining: 1 });
      expect((await b.inspect(key)).remaining).toBe(1);
      await expect(client.reset(key, { adminToken: 'wrong-token-0123456789' })).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
      await expect(client.setRemaining(key, 11, { adminToken: ADMIN })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'remaining' });
      await expect(client.inspect({ ...key, key: '' }, { adminToken: ADMIN })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'key' });
      await expect(client.inspect(key, { adminToken: 'has space' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'adminToken' });
      expect(await client.reset(key, { adminToken: ADMIN })).toMatchObject({ remaining: 10 });
      expect((await c.inspect(key)).remaining).toBe(10);
      expect(records.map((r) => r.op)).toEqual(['inspect', 'set', 'reset']);
    } finally {
      client.close();
    }
  });

  it('a node without admin tokens refuses every admin call', async () => {
    nodes = await startCluster(1, { httpPort: 0 });
    const key = { key: 'u', limit: 5, windowMs: 1_000 };
    expect((await rpc(nodes[0]!, 'reset', key, ADMIN)).error?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(await http(nodes[0]!, '/v1/admin/reset', key, ADMIN)).toMatchObject({ status: 401 });
  });
});

describe('the operators\' forward items on the wire', () => {
  const item: ForwardItem = { id: 7, action: 'login', key: 'u', limit: 10, windowMs: 1000, weight: 1, cost: 0, algorithm: 0, burst: 0, hops: 0, maxWaitMs: -1, global: false, op: 2, remaining: 3, calendar: '', timeZone: '' };

  it('round-trip; a decision keeps its old 11-field form', () => {
    for (const i of [item, { ...item, op: 1 as const, remaining: -1 }, { ...item, op: 0 as const, remaining: -1 }, { ...item, op: 0 as const, remaining: -1, global: true }]) {
      const frame = decodeFrame(encodeFrame({ type: FrameType.Forward, id: 1, items: [i] }));
      expect(frame).toMatchObject({ type: FrameType.Forward, items: [i] });
    }
  });

  it('a malformed operation is dropped with its frame, never carried out', () => {
    // A Forward frame as the codec lays it out: [version, type, frame id, items].
    const row = (extra: unknown[]): Uint8Array => encodeMsgpack([PEER_PROTOCOL_VERSION, FrameType.Forward, 1, [[7, 'login', 'u', 10, 1000, 1, 0, 0, 0, 0, -1, ...extra]]]);
    for (const extra of [[false, 3, 1], [false, 0, 1], [false, 2, -2], [false, 2, 1.5], ['x', 2, 1], [false, 2]]) {
      expect(decodeFrame(row(extra)), JSON.stringify(extra)).toBeUndefined();
    }
    expect(decodeFrame(row([false, 2, 4]))).toMatchObject({ items: [{ op: 2, remaining: 4 }] });
  });
});
