/** The store's options, their defaults and checks, and the types its callers see (store.ts, store-slots.ts). */
import { invalidArgument } from '../common/errors.js';
import type { AlgorithmId } from './types.js';

export interface StoreOptions {
  /** Hard cap on tracked (action, key) pairs. When full, a key not used recently is evicted (CLOCK). */
  maxKeys: number;
  /** Slots allocated up front; the arrays double as keys arrive, up to maxKeys. */
  initialKeys: number;
  /** Distinct action names tracked at once. */
  maxActions: number;
  /** Record which keys' state changed, for replication (see drainChanges). */
  trackChanges: boolean;
  /** Keys with states received while held, waiting to be merged at their next decision (handoff); each keeps at most MAX_PENDING_PER_KEY. */
  maxPendingMerges: number;
  /**
   * How long the sweeper keeps a key after its state is back to fresh. Dropping it is
   * harmless, but a key reused soon after (a generous limit refills within a call's
   * interval) would be recreated on every call.
   */
  freshKeyGraceMs: number;
  /**
   * Where a key sits among the nodes (a cluster member passes its ring's hash of the key):
   * computed once when the key is stored and given to every visitor, so walks over the store
   * (replication, handoff after a ring change) need not hash each key again. undefined: none.
   */
  routingHash: ((action: string, key: string) => number) | undefined;
}

export const storeDefaults: StoreOptions = {
  maxKeys: 1_000_000,
  initialKeys: 1024,
  maxActions: 65_536,
  trackChanges: false,
  maxPendingMerges: 100_000,
  freshKeyGraceMs: 2_000,
  routingHash: undefined,
};

export interface StoreStats {
  decisions: number;
  allowed: number;
  rejected: number;
  /** Keys currently held. */
  keys: number;
  /** Live keys dropped because maxKeys was reached. Each one may over-admit once re-created. */
  evictions: number;
  /** Idle keys dropped by the sweeper: state equivalent to fresh, and unused since its previous pass (harmless). */
  expired: number;
  /** Requests refused (FAILED_PRECONDITION) for describing a held key with another algorithm or window (request-shape.ts). */
  shapeMismatches: number;
  /** Keys in use moved to the algorithm or window the policies now give, keeping no more than they had left. */
  shapeConversions: number;
  /** States from peers or a snapshot dropped (a negative count) or clamped to the key's limits (peer-state.ts). */
  implausibleStates: number;
}

export function validateStoreOptions(o: StoreOptions): void {
  const positiveInt = (name: 'maxKeys' | 'initialKeys' | 'maxActions' | 'maxPendingMerges', max: number): void => {
    const v = o[name];
    if (!Number.isSafeInteger(v) || v < 1 || v > max) throw invalidArgument(name, `must be an integer from 1 to ${max}, got ${String(v)}`);
  };
  positiveInt('maxKeys', 0x7fffffff);
  positiveInt('initialKeys', 0x7fffffff);
  positiveInt('maxActions', 65_536);
  positiveInt('maxPendingMerges', 10_000_000);
  if (typeof o.trackChanges !== 'boolean') throw invalidArgument('trackChanges', 'must be a boolean');
  if (o.routingHash !== undefined && typeof o.routingHash !== 'function') throw invalidArgument('routingHash', 'must be a function or undefined');
  const grace = o.freshKeyGraceMs;
  if (typeof grace !== 'number' || !(grace >= 0 && grace <= 86_400_000)) {
    throw invalidArgument('freshKeyGraceMs', `must be a number from 0 to 86400000 (24 h), got ${String(grace)}`);
  }
}

/**
 * How an imported state meets one already held for the same key: 'replace' overwrites;
 * 'merge' keeps both views conservatively; 'replica' overwrites a copy but merges with a
 * state this store decided itself (a replica never erases decisions made here). 'handed' is
 * 'merge' for a state whose sender keeps the same copy as the key's only other holder: owned
 * here, but not listed as changed (replicating it would send it back where it came from).
 */
export type ImportMode = 'replace' | 'merge' | 'replica' | 'handed';

/**
 * Visits one key's state; `cells[base .. base + 3]` are its four doubles (see STATE_STRIDE);
 * `hash` is StoreOptions.routingHash of the key (0 without one).
 */
export type EntryVisitor = (action: string, key: string, algorithm: AlgorithmId, cells: Float64Array, base: number, hash: number) => void;
