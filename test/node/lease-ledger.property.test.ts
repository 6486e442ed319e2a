import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock, type Clock } from '../../src/common/clock.js';
import { STATE_STRIDE } from '../../src/limiter/algorithms/index.js';
import { LimiterStore } from '../../src/limiter/store.js';
import type { AlgorithmId, ResolvedParams } from '../../src/limiter/types.js';
import { newResolvedParams, resolveRequest } from '../../src/limiter/validate.js';
import { LeaseGranter } from '../../src/node/lease/lease-granter.js';
import { LeaseHolder } from '../../src/node/lease/lease-holder.js';
import { resolveLeaseOptions } from '../../src/node/lease/lease-options.js';
import { OwnerDecision } from '../../src/node/routing/owner-decision.js';
import { NO_WAIT } from '../../src/node/routing/router.js';
import type { PeerTransport } from '../../src/node/transport/peer-transport.js';
import { decodeFrame } from '../../src/node/wire/codec.js';
import { FrameType } from '../../src/node/wire/frames.js';

/**
 * The lease ledger against the reference model: an exact limiter admits at most `limit` per
 * fixed window. Holders (with clocks offset from the owner's) take from their slices, forward
 * what they cannot, ask, receive grants, give back; the network delays or drops frames; time
 * passes (slices expire, windows roll over); holders die; the owner dies and its replica —
 * which holds every grant as consumed — takes over. Whatever the order, no window admits more
 * than its limit.
 */

const WINDOW_MS = 10_000;
const LIMIT = 200;
const HOLDERS = 3;

type Command =
  | { kind: 'request'; at: number; cost: number; times: number }
  | { kind: 'deliver'; index: number; drop: number }
  | { kind: 'advance'; ms: number }
  | { kind: 'sweep'; at: number }
  | { kind: 'killHolder'; at: number }
  | { kind: 'failover' }
  | { kind: 'drain' }
  | { kind: 'forgeReturn'; units: number };

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('request' as const), at: fc.integer({ min: 0, max: HOLDERS }), cost: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 3 })), times: fc.integer({ min: 1, max: 8 }) }) },
  { weight: 14, arbitrary: fc.record({ kind: fc.constant('deliver' as const), index: fc.nat(), drop: fc.integer({ min: 0, max: 9 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 1_500 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('sweep' as const), at: fc.integer({ min: 0, max: HOLDERS - 1 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('killHolder' as const), at: fc.integer({ min: 0, max: HOLDERS - 1 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('failover' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drain' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('forgeReturn' as const), units: fc.integer({ min: 1, max: 50 }) }) },
);

interface Message {
  from: string;
  to: string;
  frame: Uint8Array;
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** One owner (and its replica, kept current as sync replication would), HOLDERS holders, and the frames between them. */
class World {
  readonly clock = new ManualClock(1_700_000_000_000);
  readonly options = resolveLeaseOptions({ enabled: true, thresholdPerSec: 0, leaseTtlMs: 2_000, idleMs: 1_000, marginMs: 10 });
  ownerId = 'o0';
  owner: LimiterStore;
  replica: LimiterStore;
  decision: OwnerDecision;
  granter: LeaseGranter;
  readonly holders: (LeaseHolder | undefined)[] = [];
  readonly network: Message[] = [];
  /** Admitted units per window index, by the owner's (true) clock. */
  readonly admitted = new Map<number, number>();
  private readonly cells = new Float64Array(STATE_STRIDE);

  constructor(offsets: number[]) {
    this.owner = new LimiterStore(this.clock, { trackChanges: true });
    this.replica = new LimiterStore(this.clock, { trackChanges: true });
    this.decision = new OwnerDecision({ store: this.owner }, { syncReplication: false });
    this.granter = this.newGranter();
    for (let h = 0; h < HOLDERS; h++) {
      const id = `h${h}`;
      const clock: Clock = { now: () => this.clock.now() + offsets[h]! };
      const transport: PeerTransport = {
        send: (address, frame) => {
          this.network.push({ from: id, to: address, frame });
          return true;
        },
        onFrame: () => undefined,
        onPeerDown: () => undefined,
        disconnect: () => undefined,
        close: async () => undefined,
      };
      const view = { ownerOf: () => this.ownerId, decidesHere: () => false, addressOf: (nodeId: string) => (nodeId === this.ownerId ? nodeId : undefined) };
      this.holders.push(new LeaseHolder({ view, transport, clock }, this.options));
    }
  }

  params(cost: number): ResolvedParams {
    return resolveRequest({ key: 'k', action: 'a', limit: LIMIT, windowMs: WINDOW_MS, algorithm: 'fixed-window', cost }, newResolvedParams());
  }

  admit(cost: number): void {
    const window = Math.floor(this.clock.now() / WINDOW_MS);
    this.admitted.set(window, (this.admitted.get(window) ?? 0) + cost);
  }

  /** The replica takes the owner's state as it is (sync replication of every change). */
  replicate(): void {
    const algorithm = this.owner.readEntry('a', 'k', this.cells);
    if (algorithm !== -1) this.replica.importEntry('a', 'k', algorithm as AlgorithmId, this.cells, 0, 'replace');
  }

  newGranter(): LeaseGranter {
    const ownerId = this.ownerId;
    // The holders alive, and m0: a member that holds no lease.
    const view = { addressOf: (nodeId: string) => (nodeId === 'm0' || this.holders[Number(nodeId.slice(1))] !== undefined ? nodeId : undefined), decidesHere: () => this.ownerId === ownerId };
    const replication = { flushAndWait: async () => this.replicate(), changed: () => this.replicate() };
    const transport = { send: (address: string, frame: Uint8Array) => this.network.push({ from: ownerId, to: address, frame }) > 0 };
    return new LeaseGranter({ view, store: this.owner, decision: this.decision, replication, clock: this.clock, transport }, this.options, 0);
  }

  request(at: number, cost: number): void {
    const p = this.params(cost);
    const holder = this.holders[at];
    if (at < HOLDERS && holder === undefined) return; // a dead holder answers nothing
    const leased = holder?.take(p);
    if (leased !== undefined) {
      expect(leased.allowed).toBe(true);
      this.admit(cost);
      return;
    }
    holder?.forwarded(p);
    // Forwarded (or asked of the owner directly): decided at the owner.
    const d = this.decision.decideNow(p, NO_WAIT)!;
    this.replicate();
    if (d.allowed) this.admit(cost);
  }

  /** Requests at the owner until it refuses: the window is used up there (what slices hold aside). */
  drain(): void {
    for (let i = 0; i <= LIMIT; i++) {
      const d = this.decision.decideNow(this.params(1), NO_WAIT)!;
      this.replicate();
      if (!d.allowed) return;
      this.admit(1);
    }
  }

  deliver(index: number, drop: boolean): void {
    if (this.network.length === 0) return;
    const [message] = this.network.splice(index % this.network.length, 1);
    if (drop) return;
    const { from, to, frame } = message!;
    const decoded = decodeFrame(frame);
    expect(decoded).toBeDefined();
    if (decoded === undefined) return;
    if (to === this.ownerId) {
      if (decoded.type === FrameType.LeaseAsk) this.granter.receiveAsks(decoded.asks, from);
      if (decoded.type === FrameType.LeaseReturn) this.granter.receiveReturns(decoded.returns, from);
      return;
    }
    const holder = this.holders[Number(to.slice(1))];
    if (holder !== undefined && decoded.type === FrameType.LeaseGrant) for (const grant of decoded.grants) holder.receiveGrant(grant, from);
  }

  /** The owner dies; its replica, which holds every grant as consumed, is the owner now. Frames to the old one are lost. */
  failover(): void {
    this.ownerId = `o${Number(this.ownerId.slice(1)) + 1}`;
    this.owner = this.replica;
    this.replica = new LimiterStore(this.clock, { trackChanges: true });
    this.replicate();
    this.decision = new OwnerDecision({ store: this.owner }, { syncReplication: false });
    this.granter = this.newGranter();
  }

  close(): void {
    for (const holder of this.holders) holder?.close();
  }
}

describe('lease ledger against the reference model', () => {
  it('never admits more than the limit in any window, whatever the grants, returns, expiries, drops and deaths', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: -5_000, max: 5_000 }), { minLength: HOLDERS, maxLength: HOLDERS }), fc.array(command, { minLength: 100, maxLength: 400 }), async (offsets, commands) => {
        const world = new World(offsets);
        try {
          for (const c of commands) {
            if (c.kind === 'request') for (let i = 0; i < c.times; i++) world.request(c.at, c.cost);
            else if (c.kind === 'deliver') world.deliver(c.index, c.drop === 0); // one in ten lost
            else if (c.kind === 'advance') world.clock.advance(c.ms);
            else if (c.kind === 'sweep') world.holders[c.at]?.sweep();
            else if (c.kind === 'killHolder') world.holders[c.at] = undefined;
            else if (c.kind === 'drain') world.drain();
            else if (c.kind === 'forgeReturn') world.granter.receiveReturns([{ action: 'a', key: 'k', units: c.units, epoch: Math.floor(world.clock.now() / WINDOW_MS) * WINDOW_MS }], 'm0'); // a member's return of units it was never granted
            else world.failover();
            await settle(); // grants are answered after the replication they wait for
          }
          for (const [window, units] of world.admitted) expect(units, `window ${window}`).toBeLessThanOrEqual(LIMIT);
        } finally {
          world.close();
        }
      }),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 300), ...(process.env.PROPERTY_SEED === undefined ? {} : { seed: Number(process.env.PROPERTY_SEED) }) },
    );
  });

  it('leases do answer: a busy holder admits most of its requests from its slices, and what it gives back is admitted again', async () => {
    const world = new World([0, 0, 0]);
    try {
      let leased = 0;
      for (let i = 0; i < 30; i++) {
        world.request(0, 1);
        await settle(); // asks leave once per event-loop turn
        while (world.network.length > 0) {
          world.deliver(0, false);
          await settle();
        }
      }
      leased = world.holders[0]!.stats().leasedDecisions;
      expect(leased).toBeGreaterThan(20);
      // The key cools: the slice goes back, and the owner admits it again — exactly the limit in all.
      world.clock.advance(1_500);
      world.holders[0]!.sweep();
      await settle();
      while (world.network.length > 0) world.deliver(0, false);
      expect(world.holders[0]!.stats().unitsReturned).toBeGreaterThan(0);
      for (let i = 0; i < 2 * LIMIT; i++) world.request(HOLDERS, 1);
      expect([...world.admitted.values()]).toEqual([LIMIT]);
    } finally {
      world.close();
    }
  });
});
