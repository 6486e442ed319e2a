import { afterEach, describe, expect, it } from 'vitest';
import type { AdminRecord, RingLimitNode } from '../../src/node/node.js';
import { decodeFrame, encodeFrame } from '../../src/node/wire/codec.js';
import { FrameType, PEER_PROTOCOL_VERSION, type ForwardItem } from '../../src/node/wire/frames.js';
import { encodeMsgpack } from '../../src/node/wire/msgpack.js';
import { startCluster, stopAll, waitFor } from './helpers.js';

const request = (key: string) => ({ key, action: 'login', limit: 10, windowMs: 86_400_000, algorithm: 'token-bucket' as const });

describe('operators on a cluster: inspect, reset and set a key at its owner', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
  });

  it('through any node: set and reset reach the owner, inspect reads it and consumes nothing, and each is recorded with who asked', async () => {
    nodes = await startCluster(3, { replicationDelayMs: 5 });
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
    nodes = await startCluster(3, { replicationDelayMs: 5 });
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

describe('the operators\' forward items on the wire', () => {
  const item: ForwardItem = { id: 7, action: 'login', key: 'u', limit: 10, windowMs: 1000, weight: 1, cost: 0, algorithm: 0, burst: 0, hops: 0, maxWaitMs: -1, global: false, op: 2, remaining: 3 };

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
