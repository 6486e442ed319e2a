import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { RingLimitClient } from '../../src/node/client/client.js';
import { rateLimiterClientConstructor } from '../../src/node/api/proto.js';
import type { RingLimitNode } from '../../src/node/node.js';
import { decodeFrame, encodeFrame } from '../../src/node/wire/codec.js';
import { FrameType, PEER_PROTOCOL_VERSION, type ForwardItem } from '../../src/node/wire/frames.js';
import { encodeMsgpack } from '../../src/node/wire/msgpack.js';
import { startCluster, stopAll, unaryCall } from './helpers.js';

/** The next local midnight in `timeZone` after `nowMs`, found with the platform's Intl alone (minute steps, then bisection). */
function nextMidnight(nowMs: number, timeZone: string): number {
  const dateOf = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
  const today = dateOf.format(nowMs);
  let low = nowMs;
  let high = nowMs + 60_000;
  while (dateOf.format(high) === today) high += 3_600_000;
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (dateOf.format(mid) === today) low = mid;
    else high = mid;
  }
  return high;
}

describe('calendar windows across a cluster', () => {
  let nodes: RingLimitNode[] = [];
  const clients: grpc.Client[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await stopAll(nodes);
  });

  it('a day of Europe/Paris, asked through every node, the gRPC API, the stream client and HTTP: one count at the owner, reset at local midnight', async () => {
    nodes = await startCluster(3, { httpPort: 0 });
    const [a, b, c] = nodes as [RingLimitNode, RingLimitNode, RingLimitNode];
    // A key c owns: a and b forward it there.
    let key = '';
    for (let i = 0; i < 10_000 && key === ''; i++) if (a.ownerOf(`tenant-${i}`, 'exports') === c.nodeId) key = `tenant-${i}`;
    const request = { key, action: 'exports', limit: 6, calendar: 'day' as const, timeZone: 'Europe/Paris' };
    const first = await a.allow(request);
    const midnight = nextMidnight(Date.now(), 'Europe/Paris');
    expect(first).toMatchObject({ allowed: true, limit: 6, remaining: 5 });
    expect(Math.abs(first.resetAtMs - midnight)).toBeLessThan(1_000);
    expect((await b.allow(request)).remaining).toBe(4);
    expect((await c.allow(request)).remaining).toBe(3);

    const { error, response } = await unaryCall<{ allowed: boolean; remaining: number; resetAtMs: number }>(clients, rateLimiterClientConstructor(), b, 'allow', {
      key,
      action: 'exports',
      limit: 6,
      calendar: 'day',
      timeZone: 'Europe/Paris',
    });
    expect(error).toBeNull();
    expect(response).toMatchObject({ allowed: true, remaining: 2 });

    const client = new RingLimitClient({ nodes: [c.grpcAddress!] });
    try {
      expect(await client.allow(request)).toMatchObject({ allowed: true, remaining: 1 });
    } finally {
      client.close();
    }

    const res = await fetch(`http://${a.httpAddress!}/v1/allow`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
    expect(await res.json()).toMatchObject({ allowed: true, remaining: 0 });

    const refused = await b.allow(request);
    expect(refused.allowed).toBe(false);
    expect(Math.abs(refused.retryAfterMs - (midnight - Date.now()))).toBeLessThan(1_000);
    // The same key in another zone's day is another window: refused with the reason, not mixed up.
    await expect(a.allow({ ...request, windowMs: 86_400_000 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'calendar' });
    await expect(b.allow({ ...request, timeZone: 'Mars/Olympus_Mons' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'timeZone' });
    await expect(c.allow({ ...request, algorithm: 'token-bucket' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'calendar' });
  });
});

describe('forward items with a calendar on the wire', () => {
  const item: ForwardItem = { id: 9, action: 'exports', key: 'u', limit: 6, windowMs: 90_000_000, weight: 1, cost: 1, algorithm: 3, burst: 0, hops: 0, maxWaitMs: -1, global: false, op: 0, remaining: -1, calendar: 'day', timeZone: 'Europe/Paris' };

  it('round-trip with and without an admin operation; a window without a calendar keeps its short form', () => {
    for (const i of [item, { ...item, op: 1 as const }, { ...item, op: 2 as const, remaining: 3 }, { ...item, global: true }]) {
      const frame = decodeFrame(encodeFrame({ type: FrameType.Forward, id: 1, items: [i] }));
      expect(frame).toMatchObject({ type: FrameType.Forward, items: [i] });
    }
    const plain = { ...item, calendar: '', timeZone: '' };
    const bytes = encodeFrame({ type: FrameType.Forward, id: 1, items: [plain] });
    expect(decodeFrame(bytes)).toMatchObject({ items: [plain] });
    expect(bytes.length).toBeLessThan(encodeFrame({ type: FrameType.Forward, id: 1, items: [item] }).length - 15);
  });

  it('a malformed calendar field drops the frame', () => {
    const row = (extra: unknown[]): Uint8Array => encodeMsgpack([PEER_PROTOCOL_VERSION, FrameType.Forward, 1, [[9, 'exports', 'u', 6, 90_000_000, 1, 1, 3, 0, 0, -1, ...extra]]]);
    for (const extra of [
      [false, 0, -1, 'day'],
      [false, 0, -1, '', 'UTC'],
      [false, 0, -1, 'day', ''],
      [false, 0, -1, 7, 'UTC'],
      [false, 0, -1, 'day', 'x'.repeat(65)],
      [false, 3, -1, 'day', 'UTC'],
      ['no', 0, -1, 'day', 'UTC'],
    ]) {
      expect(decodeFrame(row(extra)), JSON.stringify(extra)).toBeUndefined();
    }
    expect(decodeFrame(row([false, 0, -1, 'month', 'UTC']))).toMatchObject({ items: [{ calendar: 'month', timeZone: 'UTC', op: 0 }] });
  });
});
