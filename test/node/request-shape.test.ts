import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { rateLimiterClientConstructor } from '../../src/node/api/proto.js';
import type { RingLimitNode } from '../../src/node/node.js';
import { encodeFrame } from '../../src/node/wire/codec.js';
import { FrameType } from '../../src/node/wire/frames.js';
import type { Algorithm } from '../../src/limiter/types.js';
import { peerStateBounds } from '../../src/limiter/peer-state.js';
import { rawPeerStream, startCluster, stopAll, unaryCall, waitFor } from './helpers.js';

const HOUR = 3_600_000;
const ALGORITHMS: Algorithm[] = ['token-bucket', 'gcra', 'sliding-window', 'fixed-window'];

/** A key of `action` that `owner` owns in `via`'s view. */
function keyOwnedBy(via: RingLimitNode, owner: RingLimitNode, action: string): string {
  for (let i = 0; i < 10_000; i++) if (via.ownerOf(`user-${i}`, action) === owner.nodeId) return `user-${i}`;
  throw new Error('no key found');
}

describe('issue 28 on a 3-node cluster: a request’s shape never resets a key, through a node that does not own it', () => {
  let nodes: RingLimitNode[] = [];
  const clients: grpc.Client[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await stopAll(nodes);
  });

  it('alternating algorithms, a cost-0 peek and rotating time zones, via a non-owner over the embedded, gRPC and HTTP APIs', async () => {
    nodes = await startCluster(3, { httpPort: 0 });
    const [a, b, owner] = nodes as [RingLimitNode, RingLimitNode, RingLimitNode];

    // Alternating the algorithm every 5 calls at 5 an hour, through a: 5 of 40 (was 40 of 40).
    const key = keyOwnedBy(a, owner, 'upload');
    let allowed = 0;
    const refusals: { code: unknown; field: unknown }[] = [];
    for (let i = 0; i < 40; i++) {
      const request = { key, action: 'upload', limit: 5, windowMs: HOUR, algorithm: ALGORITHMS[Math.floor(i / 5) % 4]! };
      try {
        if ((await a.allow(request)).allowed) allowed++;
      } catch (error) {
        refusals.push({ code: (error as { code?: unknown }).code, field: (error as { field?: unknown }).field });
      }
    }
    expect(allowed).toBe(5);
    expect(refusals).toHaveLength(30);
    expect(refusals).toEqual(Array.from({ length: 30 }, () => ({ code: 'FAILED_PRECONDITION', field: 'algorithm' })));
    expect(owner.stats().store.shapeMismatches).toBe(30);

    // A cost-0 peek as another algorithm, over gRPC through b: refused, the used-up key stays used up.
    const { error } = await unaryCall(clients, rateLimiterClientConstructor(), b, 'allow', { key, action: 'upload', limit: 5, windowMs: HOUR, algorithm: 'gcra', cost: 0 });
    expect(error?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(error?.details).toMatch(/algorithm: the key holds a state as token-bucket/);
    expect((await b.allow({ key, action: 'upload', limit: 5, windowMs: HOUR, algorithm: 'token-bucket' })).allowed).toBe(false);

    // Rotating timeZone on a calendar day at limit 5, over HTTP through a: at most 5 of 30 (was 7).
    const dayKey = keyOwnedBy(a, owner, 'exports');
    const zones = ['UTC', 'Pacific/Kiritimati', 'Pacific/Pago_Pago', 'Asia/Kolkata', 'America/New_York', 'Europe/Paris'];
    let dayAllowed = 0;
    for (let i = 0; i < 30; i++) {
      const body = JSON.stringify({ key: dayKey, action: 'exports', limit: 5, calendar: 'day', timeZone: zones[i % zones.length] });
      const res = await fetch(`http://${a.httpAddress!}/v1/allow`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const answer = (await res.json()) as { allowed?: boolean; code?: string; field?: string };
      if (res.status === 200 && answer.allowed === true) dayAllowed++;
      // A refusal for the key's shape is a conflict with the state it holds: 409, never a server error.
      if (res.status !== 200) expect({ status: res.status, code: answer.code, field: answer.field }).toEqual({ status: 409, code: 'FAILED_PRECONDITION', field: 'timeZone' });
    }
    expect(dayAllowed).toBeLessThanOrEqual(5);
    expect(dayAllowed).toBeGreaterThan(0);
  }, 60_000);

  it('a Handoff of −9e15 tokens from a member is clamped at the owner’s next decision (counted): the key is not locked out for ever', async () => {
    nodes = await startCluster(3, { handoffWindowMs: 0 });
    const [a, , owner] = nodes as [RingLimitNode, RingLimitNode, RingLimitNode];
    const key = keyOwnedBy(a, owner, 'api');
    const { stream, close } = rawPeerStream(owner, a.nodeId);
    try {
      stream.on('error', () => undefined);
      // Cells relative to the sender's now: [tokens, at, rate, freshAt].
      stream.write(encodeFrame({ type: FrameType.Handoff, id: 41, entries: [{ action: 'api', key, algorithm: 0, cells: [-9e15, 0, 0, 0] }] }));
      await waitFor(() => owner.store.has('api', key), 5_000, 'the handed-off state to arrive');
    } finally {
      close();
    }
    const d = await a.allow({ key, action: 'api', limit: 5, windowMs: HOUR });
    expect(d.allowed).toBe(false);
    expect(d.retryAfterMs).toBeLessThanOrEqual(peerStateBounds.maxWaitMs + HOUR + HOUR / 5);
    expect(owner.stats().store.implausibleStates).toBe(1);
  }, 60_000);
});
