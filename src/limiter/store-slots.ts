import type { Clock } from '../common/clock.js';
import { RateLimitError } from '../common/errors.js';
import { FRESH_AT, STATE_STRIDE } from './algorithms/index.js';
import { giveBackToWindow, windowStartOfState } from './algorithms/fixed-window.js';
import type { Calendar } from './calendar.js';
import { storeDefaults, validateStoreOptions, type EntryVisitor, type StoreOptions } from './store-options.js';
import { ALGORITHMS, AlgorithmId, type LimiterState } from './types.js';

export const NONE = -1;

/** `larger` with `old` copied into its start. */
function grown<T extends Float64Array | Uint8Array | Uint16Array | Int32Array>(old: T, larger: T): T {
  larger.set(old);
  return larger;
}

/** States waiting for one key, newest first: each is merged at the key's next decision. */
export interface PendingMerge {
  algorithm: AlgorithmId;
  cells: Float64Array;
  /** The state that arrived before this one, if it waits too. */
  next: PendingMerge | undefined;
  /** States in this list. */
  depth: number;
}

/**
 * States that may wait for one key at once: every holder on every ring since the cluster last
 * settled may send one (a push, a pull answer). Past it the newest is not kept, as when
 * maxPendingMerges keys already wait.
 */
export const MAX_PENDING_PER_KEY = 8;

/**
 * In-memory state of (action, key) pairs. Struct-of-arrays layout: per key, four doubles
 * of algorithm state, its algorithm id, an action id and a "used" bit in typed arrays,
 * plus one Map entry (key → slot) per action. No object, closure or timer per key.
 *
 * Eviction at maxKeys is CLOCK (second chance), an approximation of least-recently-used
 * that costs one byte write per decision instead of relinking a list: a hand sweeps the
 * slots, clearing "used" bits, and evicts the first key not used since the hand last
 * passed it. New keys start unmarked (as in SIEVE), so a key seen once goes first.
 *
 * This part is the slot table: the typed arrays, where a key lives (insert, evict, sweep,
 * remove, grow), which changed, and walks over them. LimiterStore (store.ts) decides on it.
 */
export class StoreSlots {
  readonly options: Readonly<StoreOptions>;
  protected readonly clock: Clock;

  protected readonly tables = new Map<string, Map<string, number>>();
  protected readonly actionIds = new Map<string, number>();
  protected readonly actionNames: string[] = [];

  protected capacity: number;
  protected cells: Float64Array;
  protected algorithmOf: Uint8Array;
  protected actionOf: Uint16Array;
  /** 1 where the key was used since the eviction hand last passed it. */
  protected used: Uint8Array;
  /** 1 where the key was used since the sweeper last passed it: such a key is not dropped yet. */
  protected usedSinceSweep: Uint8Array;
  /** Slots freed by removal, reused before the arrays grow. */
  protected readonly freeSlots: number[] = [];
  /** Slots whose state changed since the last drainChanges(), each listed once. */
  protected changedFlag: Uint8Array;
  protected changedList: Int32Array;
  protected changedCount = 0;
  /** 1 where the slot's state was last changed by a decision here, 0 where by an import. */
  protected decidedHere: Uint8Array;
  /** The key's shape (request-shape.ts): the window its state was written under, 0 where not known yet (an imported state)... */
  protected windowOf: Float64Array;
  /** ...and its calendar, or null. The algorithm is algorithmOf. */
  protected readonly calendarOf: (Calendar | null)[] = [];
  /** 1 where the state came from a peer or a snapshot and has not been checked against the key's limits yet (peer-state.ts). */
  protected unverified: Uint8Array;
  /** Peers' states waiting to be merged into a slot at its next decision, by slot; pendingFlag marks those slots (one byte read per decision). */
  protected readonly pendingMerges = new Map<number, PendingMerge>();
  protected pendingFlag: Uint8Array;
  /** StoreOptions.routingHash of each slot's key (empty without one). */
  protected hashOf: Int32Array;
  protected readonly keyOf: (string | undefined)[] = [];
  protected hand = 0;
  /** Slots [0, highWater) have been handed out at least once. */
  protected highWater = 0;
  protected size = 0;
  protected sweepCursor = 0;
  protected readonly counters = { allowed: 0, rejected: 0, evictions: 0, expired: 0, shapeMismatches: 0, shapeConversions: 0, implausibleStates: 0 };
  protected mutationCount = 0;

  constructor(clock: Clock, options: Partial<StoreOptions> = {}) {
    const merged: StoreOptions = { ...storeDefaults, ...options };
    validateStoreOptions(merged);
    this.options = merged;
    this.clock = clock;
    this.capacity = Math.min(merged.initialKeys, merged.maxKeys);
    this.cells = new Float64Array(this.capacity * STATE_STRIDE);
    this.algorithmOf = new Uint8Array(this.capacity);
    this.actionOf = new Uint16Array(this.capacity);
    this.used = new Uint8Array(this.capacity);
    this.usedSinceSweep = new Uint8Array(this.capacity);
    this.windowOf = new Float64Array(this.capacity);
    this.unverified = new Uint8Array(this.capacity);
    this.pendingFlag = new Uint8Array(this.capacity);
    this.hashOf = new Int32Array(merged.routingHash === undefined ? 0 : this.capacity);
    this.decidedHere = new Uint8Array(merged.trackChanges ? this.capacity : 0);
    this.changedFlag = new Uint8Array(merged.trackChanges ? this.capacity : 0);
    this.changedList = new Int32Array(merged.trackChanges ? this.capacity : 0);
  }

  /** Keys changed since the last drainChanges() (with trackChanges). */
  get pendingChanges(): number {
    return this.changedCount;
  }

  protected markChanged(slot: number): void {
    this.decidedHere[slot] = 1;
    if (this.changedFlag[slot] === 1) return;
    this.changedFlag[slot] = 1;
    this.changedList[this.changedCount++] = slot;
  }

  /** Keeps a peer's state for the slot's next decision; false when it cannot wait (a bound is reached). */
  protected addPendingMerge(slot: number, algorithm: AlgorithmId, cells: Float64Array, base: number): boolean {
    const next = this.pendingMerges.get(slot);
    if (next === undefined ? this.pendingMerges.size >= this.options.maxPendingMerges : next.depth >= MAX_PENDING_PER_KEY) return false;
    this.pendingMerges.set(slot, { algorithm, cells: cells.slice(base, base + STATE_STRIDE), next, depth: (next?.depth ?? 0) + 1 });
    this.pendingFlag[slot] = 1;
    return true;
  }

  /** Visits the states waiting to be merged into (action, key), if any: whoever takes the key over must get them too. */
  forEachPendingState(action: string, key: string, visit: EntryVisitor): void {
    const slot = this.tables.get(action)?.get(key);
    if (slot !== undefined && this.pendingFlag[slot] === 1) this.visitPending(slot, action, key, visit);
  }

  private visitPending(slot: number, action: string, key: string, visit: EntryVisitor): void {
    for (let m = this.pendingMerges.get(slot); m !== undefined; m = m.next) visit(action, key, m.algorithm, m.cells, 0, this.hashOf[slot] ?? 0);
  }

  protected dropPendingMerge(slot: number): void {
    this.pendingMerges.delete(slot);
    this.pendingFlag[slot] = 0;
  }

  /**
   * Visits every key whose state changed (an allowed decision) since the last call, once
   * each, and forgets them. Requires trackChanges.
   */
  drainChanges(visit: EntryVisitor, maxEntries = Infinity): number {
    let visited = 0;
    let i = 0;
    for (; i < this.changedCount && visited < maxEntries; i++) {
      const slot = this.changedList[i]!;
      this.changedFlag[slot] = 0;
      const key = this.keyOf[slot];
      if (key === undefined) continue;
      visit(this.actionNames[this.actionOf[slot]!]!, key, this.algorithmOf[slot]! as AlgorithmId, this.cells, slot * STATE_STRIDE, this.hashOf[slot] ?? 0);
      visited++;
    }
    // Keep what a bounded drain left for next time.
    this.changedList.copyWithin(0, i, this.changedCount);
    this.changedCount -= i;
    return visited;
  }

  /**
   * Visits every key held (snapshots, handoff), or those in slots [fromSlot, toSlot) for work
   * done in chunks. `withPending`: each key's states waiting to be merged are visited after it,
   * as entries of their own (a receiver that merges conservatively gets them all).
   */
  forEachEntry(visit: EntryVisitor, fromSlot = 0, toSlot = Infinity, withPending = false): void {
    const end = Math.min(toSlot, this.highWater);
    for (let slot = fromSlot; slot < end; slot++) {
      const key = this.keyOf[slot];
      if (key === undefined) continue;
      const action = this.actionNames[this.actionOf[slot]!]!;
      visit(action, key, this.algorithmOf[slot]! as AlgorithmId, this.cells, slot * STATE_STRIDE, this.hashOf[slot] ?? 0);
      if (withPending && this.pendingFlag[slot] === 1) this.visitPending(slot, action, key, visit);
    }
  }

  /** Copies the state of (action, key) into `into[0..3]` and returns its algorithm, or -1 if not held. */
  readEntry(action: string, key: string, into: Float64Array): AlgorithmId | -1 {
    const slot = this.tables.get(action)?.get(key);
    if (slot === undefined) return -1;
    const base = slot * STATE_STRIDE;
    for (let i = 0; i < STATE_STRIDE; i++) into[i] = this.cells[base + i]!;
    return this.algorithmOf[slot]! as AlgorithmId;
  }

  /** The slot holding (action, key), or -1: the order forEachEntry visits it in (a walk in turns knows whether it passed it). */
  slotOf(action: string, key: string): number {
    return this.tables.get(action)?.get(key) ?? -1;
  }

  /** Whether (action, key) is held. */
  has(action: string, key: string): boolean {
    return this.tables.get(action)?.has(key) === true;
  }

  /** Drops (action, key). Returns whether it was held. */
  delete(action: string, key: string): boolean {
    const slot = this.tables.get(action)?.get(key);
    if (slot === undefined) return false;
    this.remove(slot);
    return true;
  }

  /**
   * Drops up to `maxSlots` slots' worth of idle keys, resuming where the last call stopped:
   * a key whose state has been fresh for freshKeyGraceMs and that was not used since the
   * sweeper's previous pass over it.
   */
  sweep(maxSlots: number): number {
    const freshBeforeMs = this.clock.now() - this.options.freshKeyGraceMs;
    let removed = 0;
    const end = this.highWater;
    // At most one lap per call: a store smaller than maxSlots would otherwise be swept over and
    // over in one call, clearing and then testing its own used-since-pass marks.
    const budget = Math.min(maxSlots, end);
    for (let examined = 0; examined < budget; examined++) {
      if (this.sweepCursor >= end) this.sweepCursor = 0;
      const slot = this.sweepCursor++;
      if (this.keyOf[slot] === undefined) continue;
      // A key in use is kept even while its state equals a fresh one (e.g. a generous limit
      // refilling between calls): dropping it would only make the next call recreate it.
      const usedSincePass = this.usedSinceSweep[slot] === 1;
      this.usedSinceSweep[slot] = 0;
      // A state waiting to be merged (a peer's count for this key) is not known to be fresh: kept.
      if (!usedSincePass && this.pendingFlag[slot] !== 1 && this.cells[slot * STATE_STRIDE + FRESH_AT]! <= freshBeforeMs) {
        this.remove(slot);
        removed++;
      }
    }
    this.counters.expired += removed;
    return removed;
  }

  get keyCount(): number {
    return this.size;
  }

  /** Slots handed out so far: forEachEntry ranges end here. */
  get slotCount(): number {
    return this.highWater;
  }

  /** The stored state of (action, key), or undefined. For replication, snapshots and tests. */
  getState(action: string, key: string): LimiterState | undefined {
    const slot = this.tables.get(action)?.get(key);
    if (slot === undefined) return undefined;
    const base = slot * STATE_STRIDE;
    return {
      algorithm: ALGORITHMS[this.algorithmOf[slot]!]!,
      s0: this.cells[base]!,
      s1: this.cells[base + 1]!,
      s2: this.cells[base + 2]!,
    };
  }

  protected touch(slot: number): void {
    this.used[slot] = 1;
    this.usedSinceSweep[slot] = 1;
  }

  /** CLOCK: evicts the first key the hand finds unused since its last pass. Bounded: two sweeps at most. */
  protected evictOne(): void {
    const end = this.highWater;
    for (let step = 0; step < 2 * end + 1; step++) {
      const slot = this.hand;
      this.hand = slot + 1 >= end ? 0 : slot + 1;
      if (this.keyOf[slot] === undefined) continue;
      if (this.used[slot] === 1) {
        this.used[slot] = 0;
        continue;
      }
      this.counters.evictions++;
      this.remove(slot);
      return;
    }
  }

  protected insert(action: string, key: string, algorithm: AlgorithmId): number {
    let table = this.tables.get(action);
    let actionId = this.actionIds.get(action);
    if (table === undefined || actionId === undefined) {
      if (this.actionNames.length >= this.options.maxActions) {
        throw new RateLimitError(
          'RESOURCE_EXHAUSTED',
          `action: more than ${this.options.maxActions} distinct actions; actions name kinds of operation, put per-entity ids in the key`,
          'action',
        );
      }
      table = new Map();
      actionId = this.actionNames.length;
      this.tables.set(action, table);
      this.actionIds.set(action, actionId);
      this.actionNames.push(action);
    }
    if (this.size >= this.options.maxKeys) this.evictOne();
    const slot = this.allocateSlot();
    table.set(key, slot);
    this.keyOf[slot] = key;
    if (this.options.routingHash !== undefined) this.hashOf[slot] = this.options.routingHash(action, key);
    this.actionOf[slot] = actionId;
    this.algorithmOf[slot] = algorithm;
    this.windowOf[slot] = 0;
    this.calendarOf[slot] = null;
    this.unverified[slot] = 0;
    this.used[slot] = 0;
    this.usedSinceSweep[slot] = 1;
    this.size++;
    return slot;
  }

  protected allocateSlot(): number {
    const free = this.freeSlots.pop();
    if (free !== undefined) return free;
    if (this.highWater === this.capacity) this.grow();
    return this.highWater++;
  }

  protected grow(): void {
    const capacity = Math.min(this.capacity * 2, this.options.maxKeys);
    this.cells = grown(this.cells, new Float64Array(capacity * STATE_STRIDE));
    this.algorithmOf = grown(this.algorithmOf, new Uint8Array(capacity));
    this.actionOf = grown(this.actionOf, new Uint16Array(capacity));
    this.used = grown(this.used, new Uint8Array(capacity));
    this.usedSinceSweep = grown(this.usedSinceSweep, new Uint8Array(capacity));
    this.windowOf = grown(this.windowOf, new Float64Array(capacity));
    this.unverified = grown(this.unverified, new Uint8Array(capacity));
    this.pendingFlag = grown(this.pendingFlag, new Uint8Array(capacity));
    if (this.options.routingHash !== undefined) this.hashOf = grown(this.hashOf, new Int32Array(capacity));
    if (this.options.trackChanges) {
      this.decidedHere = grown(this.decidedHere, new Uint8Array(capacity));
      this.changedFlag = grown(this.changedFlag, new Uint8Array(capacity));
      this.changedList = grown(this.changedList, new Int32Array(capacity));
    }
    this.capacity = capacity;
  }

  protected remove(slot: number): void {
    const key = this.keyOf[slot]!;
    this.tables.get(this.actionNames[this.actionOf[slot]!]!)!.delete(key);
    this.keyOf[slot] = undefined;
    this.calendarOf[slot] = null;
    // A key dropped here takes its waiting merge along (it was kept until its next decision, which will not come).
    if (this.pendingFlag[slot] === 1) this.dropPendingMerge(slot);
    if (this.options.trackChanges) this.decidedHere[slot] = 0;
    // A listed slot stays listed: if it is reused before the drain, the new key's state is sent, which is harmless.
    this.freeSlots.push(slot);
    this.size--;
  }

  /**
   * A lease's unused units given back (fixed windows only, where it is exact): taken off the
   * key's count while its window still starts at `windowStartMs`, the window they were taken
   * from; nothing after it rolled over, or while a merge waits for the key. Marked changed, so
   * replication carries it. Returns the units given back.
   */
  giveBack(action: string, key: string, windowStartMs: number, units: number): number {
    const slot = this.tables.get(action)?.get(key);
    if (slot === undefined || this.algorithmOf[slot] !== AlgorithmId.FixedWindow || this.unverified[slot] === 1) return 0;
    if (this.pendingFlag[slot] === 1) return 0;
    const back = giveBackToWindow(this.cells, slot * STATE_STRIDE, windowStartMs, units);
    if (back > 0) {
      this.mutationCount++;
      if (this.options.trackChanges) this.markChanged(slot);
    }
    return back;
  }

  /** The window start of a fixed window's state (a lease's epoch), or undefined when (action, key) holds no fixed window. */
  windowStartOf(action: string, key: string): number | undefined {
    const slot = this.tables.get(action)?.get(key);
    if (slot === undefined || this.algorithmOf[slot] !== AlgorithmId.FixedWindow) return undefined;
    return windowStartOfState(this.cells, slot * STATE_STRIDE);
  }
}
