import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeMsgpack } from '../../src/node/wire/msgpack.js';
import { RingLimitClient } from '../../src/node/client/client.js';
import { rateLimiterClientConstructor } from '../../src/node/api/proto.js';
import type { RingLimitNode } from '../../src/node/node.js';
import { seededRng } from '../../src/common/rng.js';
import { rawPeerStream, startCluster, stopAll, waitFor } from './helpers.js';

type Unary = (req: object, cb: (err: grpc.ServiceError | null, res?: Record<string, unknown>) => void) => void;

describe('public gRPC API and peer stream hardening', () => {
  let nodes: RingLimitNode[] = [];
  let raw: grpc.Client & { allow: Unary; allowBatch: Unary; health: Unary };
  beforeAll(async () => {
    nodes = await startCluster(2);
    const Ctor = rateLimiterClientConstructor();
    raw = new Ctor(nodes[0]!.grpcAddress!, grpc.credentials.createInsecure()) as unknown as typeof raw;
  }, 30_000);
  afterAll(async () => {
    raw?.close();
    await stopAll(nodes);
  });

  const call = (method: 'allow' | 'allowBatch' | 'health', req: object) =>
    new Promise<{ err: grpc.ServiceError | null; res?: Record<string, unknown> }>((resolve) => raw[method](req, (err, res) => resolve({ err, res })));

  it('Allow answers with the decision fields of the .proto', async () => {
    const { err, res } = await call('allow', { key: 'u1', action: 'api', limit: 2, windowMs: 60_000 });
    expect(err).toBeNull();
    expect(res).toMatchObject({ allowed: true, limit: 2, remaining: 1, retryAfterMs: 0 });
    expect(typeof res!['resetAtMs']).toBe('number');
  });

  it('bad input gets INVALID_ARGUMENT with the limiter error code and message, and changes nothing', async () => {
    const before = nodes.map((n) => n.stats().store.decisions);
    for (const bad of [
      { key: '', limit: 5, windowMs: 1000 },
      { key: 'u', limit: 0, windowMs: 1000 },
      { key: 'u', limit: 5, windowMs: 0 },
      { key: 'u', limit: 5, windowMs: 1000, algorithm: 'leaky' },
      { key: 'u', limit: 5, windowMs: 1000, cost: 6 },
      { key: 'u', limit: 5, windowMs: 1000, weight: -1 },
    ]) {
      const { err } = await call('allow', bad);
      expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err?.details).toMatch(/^INVALID_ARGUMENT: /);
      expect(err?.metadata.get('ringlimit-code')).toEqual(['INVALID_ARGUMENT']);
    }
    expect(nodes.map((n) => n.stats().store.decisions)).toEqual(before);
  });

  it('AllowBatch gives each item its own result or error', async () => {
    const { err, res } = await call('allowBatch', {
      requests: [
        { key: 'b1', limit: 1, windowMs: 60_000 },
        { key: '', limit: 1, windowMs: 60_000 },
        { key: 'b1', limit: 1, windowMs: 60_000 },
      ],
    });
    expect(err).toBeNull();
    const results = res!['results'] as { decision?: { allowed: boolean }; error?: { code: string; field: string } }[];
    expect(results[0]!.decision!.allowed).toBe(true);
    expect(results[1]!.error).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'key' });
    expect(results[2]!.decision?.allowed ?? false).toBe(false);
  });

  it('a caller timestamp never changes the decision; its distance from the node clock is recorded', async () => {
    const before = nodes[0]!.stats().callerSkew.samples;
    const { err, res } = await call('allow', { key: 'ts1', limit: 1, windowMs: 60_000, timestampMs: Date.now() - 5_000 });
    expect(err).toBeNull();
    expect(res!['allowed']).toBe(true);
    const skew = nodes[0]!.stats().callerSkew;
    expect(skew.samples).toBe(before + 1);
    expect(skew.maxAbsMs).toBeGreaterThanOrEqual(4_900);
  });

  it('Health reports the node and its view', async () => {
    const { res } = await call('health', {});
    expect(res).toMatchObject({ nodeId: 'n0', status: 'active', owners: ['n0', 'n1'], members: 2 });
  });

  it('the client batches, and typed errors come back per call', async () => {
    const client = new RingLimitClient({ nodes: nodes.map((n) => n.grpcAddress!) });
    try {
      const results = await Promise.all(Array.from({ length: 50 }, () => client.allow({ key: 'c1', action: 'api', limit: 10, windowMs: 60_000 })));
      expect(results.filter((r) => r.allowed).length).toBe(10);
      await expect(client.allow({ key: 'c1', limit: -1, windowMs: 1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'limit' });
    } finally {
      client.close();
    }
  });

  it('garbage frames on the peer stream are dropped and counted; the node keeps deciding', async () => {
    const target = nodes[1]!;
    // The earlier tests' decisions may still be replicating here (a quiet owner waits up to replicationMaxDelayMs for a fuller frame): let them land first.
    const quietMs = 2 * target.options.replicationMaxDelayMs;
    for (let keys = -1, i = 0; i < 50 && target.store.stats().keys !== keys; i++) {
      keys = target.store.stats().keys;
      await new Promise((resolve) => setTimeout(resolve, quietMs));
    }
    const before = target.stats();
    // A member's stream (a buggy or hostile member): strangers are refused before any frame, see security.test.ts.
    const { stream, close } = rawPeerStream(target, nodes[0]!.nodeId);
    stream.on('error', () => undefined);
    stream.on('data', () => undefined);
    const rng = seededRng(7);
    const frames: Buffer[] = [];
    for (let i = 0; i < 500; i++) frames.push(Buffer.from(Array.from({ length: 1 + rng.int(64) }, () => rng.int(256))));
    const plausible: unknown[] = [
      [1, 1, 5, [[1, 'a', 'k', 'x', 1000, 1, 1, 0, 0, 0, -1]]],
      [1, 1, 5, [[1, 'a', 'k', 10, 1000, 1, 1, 9, 0, 0, -1]]],
      [1, 3, 1, [['a', 'k', 0, 'NaN', 0, 0, 0]]],
      [1, 3, 1, [['a', '', 0, 1, 2, 3, 4]]],
      [2, 1, 1, []],
      [1, 99, 1],
      [1, 6, 1, 'a'],
      [1, 7, 1, [1, 2, 3]],
      null,
      { type: 1 },
      [1, 1, -1, []],
      [1, 3, 1, new Array(20_000).fill(['a', 'k', 0, 1, 2, 3, 4])],
      [1, 8, 0, [[0, 'a', 'k', 10, 1000, 1, 5, 0, 0, 0, -1, false]]],
      [1, 8, 0, [[0, 'a', 'k', 10, 1000, 1, 5, 0, 0, 0, -1, true, 1]]],
      [1, 9, 0, [['a', 'k', 0, 'x', 0, 0, 0]]],
      [1, 9, 0, 'entries'],
    ];
    for (const p of plausible) frames.push(encodeMsgpack(p));
    for (const f of frames) stream.write(f);
    await waitFor(() => target.stats().malformedFrames - before.malformedFrames >= frames.length - 5, 5_000, 'garbage to be counted');
    close();
    // Random bytes can decode to something valid only with vanishing probability; every plausible-but-wrong frame is dropped.
    expect(target.stats().malformedFrames - before.malformedFrames).toBeGreaterThanOrEqual(frames.length - 5);
    expect(target.store.stats().keys).toBe(before.store.keys);
    const d = await target.allow({ key: 'after-garbage', limit: 1, windowMs: 1000 });
    expect(d.allowed).toBe(true);
  });
});
