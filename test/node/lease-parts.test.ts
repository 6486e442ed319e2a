import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { LimiterStore } from '../../src/limiter/store.js';
import { LeaseGranter } from '../../src/node/lease/lease-granter.js';
import { OwnerDecision } from '../../src/node/routing/owner-decision.js';
import { RingLimitError } from '../../src/common/errors.js';
import { leaseDefaults, resolveLeaseOptions, sliceSize, usableMs } from '../../src/node/lease/lease-options.js';
import { resolveNodeOptions } from '../../src/node/options.js';
import { decodeFrame, encodeFrame } from '../../src/node/wire/codec.js';
import { FrameType, type ForwardItem, type Frame } from '../../src/node/wire/frames.js';
import { encodeMsgpack } from '../../src/node/wire/msgpack.js';

/** The lease options' checks, the slice rule, and the lease frames' codec. */
describe('lease parts', () => {
  it('a bad lease option is refused at start with a message naming it', () => {
    const refused = (leases: object): RingLimitError => {
      try {
        resolveNodeOptions({ leases });
      } catch (error) {
        return error as RingLimitError;
      }
      throw new Error('not refused');
    };
    expect(refused({ leaseTtlMs: 0 }).field).toBe('leases.leaseTtlMs');
    expect(refused({ maxSliceFraction: 2 }).field).toBe('leases.maxSliceFraction');
    expect(refused({ enabled: 'yes' }).field).toBe('leases.enabled');
    expect(refused({ actions: [''] }).field).toBe('leases.actions');
    expect(refused({ leaseTtlMs: 100, marginMs: 60 }).message).toMatch(/leases\.marginMs/);
    expect(resolveNodeOptions({}).leases).toEqual(leaseDefaults);
    expect(resolveLeaseOptions({ enabled: true, actions: ['api'] })).toMatchObject({ enabled: true, actions: ['api'], leaseTtlMs: 2_000 });
  });

  it('a slice: what is wanted, at most the share and the fraction of what remains, at least 1 while 1 remains', () => {
    expect(sliceSize(100, 1_000, 1, 0.5)).toBe(100);
    expect(sliceSize(1_000, 1_000, 1, 0.5)).toBe(500);
    expect(sliceSize(1_000, 1_000, 0.2, 0.5)).toBe(200);
    expect(sliceSize(10, 1, 1, 0.5)).toBe(1);
    expect(sliceSize(10, 0, 1, 0.5)).toBe(0);
    expect(sliceSize(10, 0.5, 1, 0.5)).toBe(0);
    // A lease's usable life: shortened by the margin and 0.1 %.
    expect(usableMs(2_000, 10)).toBe(1_988);
  });

  it('lease frames round-trip, and a malformed one decodes to nothing', () => {
    const item: ForwardItem = { id: 7, action: 'api', key: 'k', limit: 100, windowMs: 60_000, weight: 1, cost: 20, algorithm: 3, burst: 0, hops: 0, maxWaitMs: -1, global: false, op: 0, remaining: -1, calendar: '', timeZone: '' };
    const ask: Frame = { type: FrameType.LeaseAsk, id: 0, asks: [{ item, ratePerSec: 12.5 }] };
    expect(decodeFrame(encodeFrame(ask))).toEqual(ask);
    const grant: Frame = { type: FrameType.LeaseGrant, id: 0, grants: [{ id: 7, action: 'api', key: 'k', units: 20, expiresInMs: 1_500, resetInMs: 30_000.5, epoch: 1_700_000_040_000 }] };
    expect(decodeFrame(encodeFrame(grant))).toEqual(grant);
    const ret: Frame = { type: FrameType.LeaseReturn, id: 0, returns: [{ action: 'api', key: 'k', units: 3, epoch: 1_700_000_040_000 }] };
    expect(decodeFrame(encodeFrame(ret))).toEqual(ret);
    const row = [7, 'api', 'k', 20, 1_500, 30_000, 0];
    for (const bad of [
      [1, FrameType.LeaseGrant, 0, [[...row.slice(0, 3), 2.5, ...row.slice(4)]]], // a fraction of a unit
      [1, FrameType.LeaseGrant, 0, [[...row.slice(0, 3), 2 ** 41, ...row.slice(4)]]], // units beyond 2^40
      [1, FrameType.LeaseGrant, 0, [[...row.slice(0, 4), 86_400_001, ...row.slice(5)]]], // a lease over a day
      [1, FrameType.LeaseGrant, 0, [row.slice(1)]], // a field missing
      [1, FrameType.LeaseAsk, 0, [[[7, 'api', 'k'], 1]]], // a truncated item
      [1, FrameType.LeaseAsk, 0, [[[7, 'api', 'k', 100, 60_000, 1, 20, 3, 0, 0, -1], -1]]], // a negative rate
      [1, FrameType.LeaseReturn, 0, [['api', 'k', -3, 0]]], // negative units
      [1, FrameType.LeaseReturn, 0, [['api', '', 3, 0]]], // no key
      [1, FrameType.LeaseReturn, 0, 'api', 'k', 3, 0], // not a list
    ]) {
      expect(decodeFrame(encodeMsgpack(bad as unknown[])), JSON.stringify(bad)).toBeUndefined();
    }
  });

  it('during a split a slice is sized from what this side may spend, and taken under the split rule', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const store = new LimiterStore(clock, { trackChanges: true });
    const split = { value: 0.5, enabled: true, unknownElsewhere: () => false, retryAfterMs: () => 1_000, now: () => clock.now() };
    const decision = new OwnerDecision({ store, split }, { syncReplication: false });
    const sent: Uint8Array[] = [];
    const granter = new LeaseGranter(
      { view: { addressOf: () => 'h:1', decidesHere: () => true }, store, decision, replication: { flushAndWait: async () => undefined, changed: () => undefined }, clock, split, transport: { send: (_address, frame) => sent.push(frame) > 0 } },
      resolveLeaseOptions({ enabled: true }),
      0,
    );
    const item: ForwardItem = { id: 1, action: 'api', key: 'k', limit: 100, windowMs: 60_000, weight: 1, cost: 1_000, algorithm: 3, burst: 0, hops: 0, maxWaitMs: -1, global: false, op: 0, remaining: -1, calendar: '', timeZone: '' };
    granter.receiveAsks([{ item, ratePerSec: 100 }], 'h');
    await new Promise((resolve) => setImmediate(resolve));
    const grant = decodeFrame(sent[0]!);
    // Half of what this side may spend (100 × 0.5), taken as 25 / 0.5 = 50 units of the key's state.
    expect(grant?.type === FrameType.LeaseGrant ? grant.grants[0]!.units : -1).toBe(25);
    expect(store.inspect({ key: 'k', action: 'api', limit: 100, windowMs: 60_000, algorithm: 'fixed-window' }).remaining).toBeCloseTo(50, 6);
  });
});
