import { systemClock } from '../../common/clock.js';
import { ALGORITHMS } from '../../limiter/types.js';
import { LimiterStore } from '../../limiter/store.js';
import type { AlgorithmId } from '../../limiter/types.js';
import { routingHash } from '../routing/ring-keys.js';
import { OwnerDecision, resolveOnce, type ResolvedRequest } from '../routing/owner-decision.js';
import { decodeFrame, encodeFrame } from '../wire/codec.js';
import { AdminOp, FrameType, type ForwardItem, type ForwardResult, type WireEntry } from '../wire/frames.js';

/** Keys and items per round: a batch as a busy node sees one. */
const BATCH = 64;
/** A slice of work between event-loop turns, so gossip and the join go on meanwhile. */
const SLICE_MS = 5;
/** Key sets the rounds take turns over, so the receiving store keeps inserting keys it has not seen. */
const KEY_SETS = 8;

export interface WarmUpResult {
  rounds: number;
  ms: number;
  /** Times it gave the event loop back (one slice of SLICE_MS of work each). */
  yields: number;
}

/**
 * What a member does before it turns active (and owns keys): it runs the paths a decision
 * takes on a busy node — the store's algorithms through the owner-side decision, the peer
 * frames a forward and a replication carry, and a receiver's import of the states a push or
 * a resync brings (a new member's first second was a third importing, at 4.7 µs an entry) —
 * on scratch objects (no state of the node is touched), for `budgetMs`. A process that owned keys at
 * once ran its first second in the interpreter while a share of the cluster's traffic
 * already came to it; this moves that cost before the ring changes. 0 skips it.
 */
export async function warmUp(budgetMs: number): Promise<WarmUpResult> {
  const started = performance.now();
  let rounds = 0;
  let yields = 0;
  if (budgetMs <= 0) return { rounds, ms: 0, yields };
  const store = new LimiterStore(systemClock, { trackChanges: true, maxKeys: 4 * BATCH * ALGORITHMS.length });
  const decision = new OwnerDecision({ store }, { syncReplication: false });
  const keySets: ResolvedRequest[][] = [];
  for (let set = 0; set < KEY_SETS; set++) {
    const requests: ResolvedRequest[] = [];
    for (let i = 0; i < BATCH; i++) {
      const algorithm = ALGORITHMS[i % ALGORITHMS.length]!;
      requests.push(resolveOnce({ key: `warm-${set}-${i}`, action: 'warm-up', limit: 1 + (i % 50), windowMs: 1_000 + i, algorithm }));
    }
    keySets.push(requests);
  }
  const requests = keySets[0]!;
  // Stores as a node keeps them (each key's ring hash), receiving what the decisions changed.
  const receiverOptions = { maxKeys: 2 * KEY_SETS * BATCH, routingHash, trackChanges: true };
  let receiver = new LimiterStore(systemClock, receiverOptions);
  const importChanged = (action: string, key: string, algorithm: AlgorithmId, cells: Float64Array, base: number): void => {
    // Each key set in both modes, a pass over the sets each.
    receiver.importEntry(action, key, algorithm, cells, base, ((rounds / KEY_SETS) | 0) % 2 === 0 ? 'replica' : 'merge');
  };
  const items: ForwardItem[] = requests.map((p, i) => forwardItem(p, i));
  const results: ForwardResult[] = [];
  const entries: WireEntry[] = requests.map((p) => ({ action: p.action, key: p.key, algorithm: p.algorithm, cells: [1, 2, 3, 4] }));
  const deadline = started + budgetMs;
  while (performance.now() < deadline) {
    const sliceEnd = Math.min(deadline, performance.now() + SLICE_MS);
    while (performance.now() < sliceEnd) {
      results.length = 0;
      const round = keySets[rounds % KEY_SETS]!;
      for (let i = 0; i < round.length; i++) {
        const d = decision.decideNow(round[i]!, i % 2 === 0 ? -1 : 10);
        if (d === undefined) continue;
        results.push({ id: i, status: 0, allowed: d.allowed, limit: d.limit, remaining: d.remaining, resetInMs: 1_000, retryAfterMs: d.retryAfterMs, waitMs: d.waitMs, message: '', field: '' });
      }
      decodeFrame(encodeFrame({ type: FrameType.Forward, id: rounds, items }));
      decodeFrame(encodeFrame({ type: FrameType.ForwardReply, id: rounds, results }));
      decodeFrame(encodeFrame({ type: FrameType.Replicate, id: rounds, entries }));
      store.drainChanges(importChanged);
      // A fresh receiver now and then: a new member inserts most of what it receives.
      if (++rounds % (4 * KEY_SETS) === 0) receiver = new LimiterStore(systemClock, receiverOptions);
    }
    await new Promise((resolve) => setImmediate(resolve));
    yields++;
  }
  return { rounds, ms: performance.now() - started, yields };
}

function forwardItem(p: ResolvedRequest, id: number): ForwardItem {
  return { id, action: p.action, key: p.key, limit: p.limit, windowMs: p.windowMs, weight: 1, cost: 1, algorithm: p.algorithm, burst: 0, hops: 0, maxWaitMs: -1, global: false, op: AdminOp.Decide, remaining: 0, calendar: '', timeZone: '' };
}
