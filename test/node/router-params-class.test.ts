import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import type { Reservation } from '../../src/limiter/types.js';
import { newResolvedParams, resolveRequest } from '../../src/limiter/validate.js';
import { ClusterView, type ViewMember } from '../../src/node/routing/cluster-view.js';
import type { OwnerDecision, ResolvedRequest } from '../../src/node/routing/owner-decision.js';
import { ClusterRouter } from '../../src/node/routing/router.js';

setFlagsFromString('--allow-natives-syntax');
const sameClass = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

/**
 * The router copies a request that outlives its call (a decision waiting for a pull after a
 * ring change, a forward). Those copies reach the same store and codec code as every other
 * request: made with a spread they had another hidden class, and every member deoptimised its
 * decision path at every ring change (V8's log: decideParams "wrong map" in each old member
 * the moment the join began).
 */
describe('the router’s copies keep the hidden class of the request they copy', () => {
  it('a decision that waits for a pull, and a forward, get copies of the one class', async () => {
    const members: ViewMember[] = ['n0', 'n1'].map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: true }));
    const view = new ClusterView({ members: { current: () => members }, clock: new ManualClock(0) }, { selfId: 'n0', replicas: 1, maxHandedAwayKeys: 10, handoffWindowMs: 1_000 });
    const reached: ResolvedRequest[] = [];
    const answer: Reservation = { allowed: true, limit: 5, remaining: 4, resetAtMs: 0, retryAfterMs: 0, waitMs: 0 };
    // decideNow() undefined: a pull window is open, so the router hands decide() a copy.
    const decision = { decideNow: () => undefined, decide: (p: ResolvedRequest) => (reached.push(p), answer) } as unknown as OwnerDecision;
    const forwarder = { forward: (p: ResolvedRequest) => (reached.push(p), Promise.resolve(answer)) };
    const router = new ClusterRouter({ view, decision, forwarder, hotCopies: { decideFromCopy: () => undefined, ownerAnswered: () => undefined }, leases: undefined });
    const scratch = newResolvedParams();
    const owners = new Set<string>();
    for (let i = 0; owners.size < 2 && i < 200; i++) {
      const owner = view.ownerOf('a', `k${i}`);
      if (owners.has(owner)) continue;
      owners.add(owner);
      await router.route(resolveRequest({ key: `k${i}`, action: 'a', limit: 5, windowMs: 1_000 }, scratch), -1);
    }
    expect(reached).toHaveLength(2);
    for (const p of reached) {
      expect(p).not.toBe(scratch);
      expect(sameClass(p, scratch)).toBe(true);
    }
  });
});
