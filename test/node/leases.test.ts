import { afterEach, describe, expect, it } from 'vitest';
import type { RateLimitRequest } from '../../src/limiter/types.js';
import type { RingLimitNode } from '../../src/node/node.js';
import { encodeFrame } from '../../src/node/wire/codec.js';
import { FrameType } from '../../src/node/wire/frames.js';
import { encodeMsgpack } from '../../src/node/wire/msgpack.js';
import { rawPeerStream, startCluster, stopAll, waitFor } from './helpers.js';

/**
 * Leases on a real 3-node cluster (UDP gossip, gRPC peer streams): a busy key owned by n0 is
 * answered at n1 from the slice n0 granted it, without a hop; the cluster as a whole admits
 * no more than the limit, and a holder that dies takes only its slice with it.
 */
describe('leases', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
    nodes = [];
  });

  const LIMIT = 300;
  const request = (key: string): RateLimitRequest => ({ key, action: 'api', limit: LIMIT, windowMs: 3_600_000, algorithm: 'fixed-window' });

  function keyOwnedBy(owner: string): string {
    for (let i = 0; i < 10_000; i++) if (nodes[0]!.ownerOf(`busy-${i}`, 'api') === owner) return `busy-${i}`;
    throw new Error('no key found');
  }

  /** Allowed decisions of `count` requests for `key` through `node`, each awaited. */
  async function allowedOf(node: RingLimitNode, key: string, count: number): Promise<number> {
    let allowed = 0;
    for (let i = 0; i < count; i++) if ((await node.allow(request(key))).allowed) allowed++;
    return allowed;
  }

  /** n1 forwards the key once (a lease is opened at once: thresholdPerSec 0) and holds a slice. */
  async function leaseAtN1(key: string): Promise<void> {
    expect((await nodes[1]!.allow(request(key))).allowed).toBe(true);
    await waitFor(() => nodes[1]!.stats().leases.holder.grants >= 1, 5_000, 'n1 to be granted a slice');
  }

  it('a non-owner answers a busy key from its slice, synchronously; the cluster admits exactly the limit, the slices given back included', async () => {
    nodes = await startCluster(3, { leases: { enabled: true, thresholdPerSec: 0, idleMs: 300 } });
    const key = keyOwnedBy('n0');
    await leaseAtN1(key);
    const forwardedBefore = nodes[1]!.stats().forwarder.forwarded;
    const d = nodes[1]!.allowNow(request(key));
    expect(d).toMatchObject({ allowed: true, limit: LIMIT });
    expect(nodes[1]!.stats().leases.holder.leasedDecisions).toBe(1);
    let allowed = 2; // the forward that opened the lease, and the leased decision above
    // Every node, until the key is used up: slices at n1 and n2, the owner's own decisions.
    allowed += await allowedOf(nodes[1]!, key, 150);
    allowed += await allowedOf(nodes[2]!, key, 150);
    allowed += await allowedOf(nodes[0]!, key, 150);
    expect(allowed).toBeLessThanOrEqual(LIMIT);
    // Most of n1's 150 calls were answered from its slices (the first slice is small: slow start; a refill may be in flight when one runs out).
    // How many depends on when refills land (62 of 150 on a CI run with the cores shared; 75+
    // on a quiet machine): this checks that slices answer and that every other call was forwarded.
    const leased = nodes[1]!.stats().leases.holder.leasedDecisions;
    expect(leased).toBeGreaterThanOrEqual(15);
    // (leasedDecisions counts the allowNow above too.)
    expect(nodes[1]!.stats().forwarder.forwarded - forwardedBefore).toBeLessThanOrEqual(150 - (leased - 1));
    // The key cools: the slices left go back to the owner, which admits them again — the limit exactly.
    await waitFor(() => nodes.every((n) => n.stats().leases.holder.leases === 0), 5_000, 'idle slices to be given back');
    allowed += await allowedOf(nodes[0]!, key, LIMIT);
    const granted = nodes[0]!.stats().leases.granter;
    // All three at once, so that a shortfall says where the units went (2 short once in CI, beside the other test files).
    const lost = nodes.reduce((sum, n) => sum + n.stats().leases.holder.unitsLost, 0);
    expect({ allowed, lost, notTakenBack: granted.unitsNotTakenBack }).toEqual({ allowed: LIMIT, lost: 0, notTakenBack: 0 });
    expect(granted.grants).toBeGreaterThan(0);
  });

  it('a killed holder loses at most its slice: under-admission, never over', async () => {
    nodes = await startCluster(3, { leases: { enabled: true, thresholdPerSec: 0 }, splitShareMs: 0 });
    const key = keyOwnedBy('n0');
    await leaseAtN1(key);
    let allowed = 1 + (await allowedOf(nodes[1]!, key, 60));
    // Units n1 holds: granted, neither admitted (every leased decision was one unit) nor given back.
    const sliceAtN1 = (): number => {
      const held = nodes[1]!.stats().leases.holder;
      return held.unitsGranted - held.leasedDecisions - held.unitsReturned - held.unitsLost;
    };
    // Caught between a slice used up and its refill, n1 holds nothing: a few more calls until it holds some.
    for (let i = 0; i < 100 && sliceAtN1() === 0; i++) allowed += await allowedOf(nodes[1]!, key, 1);
    const slice = sliceAtN1();
    expect(slice).toBeGreaterThan(0);
    // A refill in flight when n1 dies is lost too: at most half of what remained (maxSliceFraction).
    const held = nodes[1]!.stats().leases.holder;
    const inFlight = held.asks > held.grants + held.refusals ? Math.ceil(LIMIT / 2) : 0;
    await nodes[1]!.stop({ graceful: false }); // kill: its slice is lost with it
    const [n0, , n2] = nodes as [RingLimitNode, RingLimitNode, RingLimitNode];
    allowed += await allowedOf(n2, key, LIMIT);
    allowed += await allowedOf(n0, key, 50);
    expect(allowed).toBeLessThanOrEqual(LIMIT);
    expect(allowed).toBeGreaterThanOrEqual(LIMIT - slice - inFlight);
  });

  it('a lease frame with implausible values is dropped and counted; a malformed one too', async () => {
    nodes = await startCluster(2, { leases: { enabled: true } });
    const key = keyOwnedBy('n0');
    const { stream, close } = rawPeerStream(nodes[0]!, 'n1');
    stream.on('error', () => undefined);
    // An ask for 0 units, and one for a reservation: well-formed frames, implausible asks.
    const item = { id: 1, action: 'api', key, limit: LIMIT, windowMs: 3_600_000, weight: 1, cost: 0, algorithm: 3, burst: 0, hops: 0, maxWaitMs: -1, global: false, op: 0, remaining: -1, calendar: '', timeZone: '' };
    stream.write(encodeFrame({ type: FrameType.LeaseAsk, id: 0, asks: [{ item, ratePerSec: 10 }, { item: { ...item, id: 2, cost: 5, maxWaitMs: 100 }, ratePerSec: 10 }] }));
    // A grant of -1 units: malformed.
    stream.write(encodeMsgpack([1, FrameType.LeaseGrant, 0, [[3, 'api', key, -1, 100, 100, 0]]]));
    await waitFor(() => nodes[0]!.stats().leases.granter.droppedFrames === 2 && nodes[0]!.stats().malformedFrames >= 1, 5_000, 'the frames to be dropped');
    close();
    expect(nodes[0]!.stats().leases.granter.grants).toBe(0);
    expect((await nodes[0]!.allow({ ...request(key), cost: 0 })).remaining).toBe(LIMIT);
  });

  it('with leases off, a member refuses every ask', async () => {
    nodes = await startCluster(2, { leases: { enabled: false } });
    const key = keyOwnedBy('n0');
    const { stream, close } = rawPeerStream(nodes[0]!, 'n1');
    stream.on('error', () => undefined);
    const item = { id: 1, action: 'api', key, limit: LIMIT, windowMs: 3_600_000, weight: 1, cost: 5, algorithm: 3, burst: 0, hops: 0, maxWaitMs: -1, global: false, op: 0, remaining: -1, calendar: '', timeZone: '' };
    stream.write(encodeFrame({ type: FrameType.LeaseAsk, id: 0, asks: [{ item, ratePerSec: 10 }] }));
    await waitFor(() => nodes[0]!.stats().leases.granter.refused === 1, 5_000, 'the ask to be refused');
    close();
    expect((await nodes[0]!.allow({ ...request(key), cost: 0 })).remaining).toBe(LIMIT);
  });
});
