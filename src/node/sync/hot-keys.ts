import type { Clock } from '../../common/clock.js';
import { STATE_STRIDE } from '../../limiter/algorithms/index.js';
import { LimiterStore } from '../../limiter/store.js';
import type { AlgorithmId, Reservation, ResolvedParams } from '../../limiter/types.js';
import { copyResolvedParams, mostUnitsHeld } from '../../limiter/validate.js';
import { SenderVerdict, type ClusterView } from '../routing/cluster-view.js';
import { WakeTimer } from '../../common/wake-timer.js';
import type { HotKeyMarks } from './hot-key-marks.js';
import { forwardItem, requestOf } from '../routing/forward-codec.js';
import { NO_WAIT } from '../routing/router.js';
import { resolveOnce, type OwnerDecision, type ResolvedRequest } from '../routing/owner-decision.js';
import { fromWireEntry, toWireEntry } from '../wire/state-wire.js';
import type { PeerTransport } from '../transport/peer-transport.js';
import { encodeFrame } from '../wire/codec.js';
import { FrameType, type ForwardItem, type WireEntry } from '../wire/frames.js';


/** Largest hit count one GlobalHits item may carry. */
const MAX_HITS_PER_ITEM = 2 ** 40;
/** Applying hits: after taking what the key can hold, the state is empty at that instant and the next round is refused. */
const MAX_APPLY_ROUNDS = 3;

export interface HotKeysComponents {
  /** The owned keys' store: the owner decides and broadcasts from it. */
  store: LimiterStore;
  view: ClusterView;
  transport: PeerTransport;
  clock: Clock;
  decision: OwnerDecision;
  /** Filled by the owner-side decision with every hot key decided here. */
  marks: HotKeyMarks;
}

export interface HotKeysInit {
  selfId: string;
  /** How often non-owners send their hits and owners broadcast changed states. */
  globalSyncMs: number;
  /** Copies held at once; past it, a request for another hot key is forwarded as usual. */
  maxGlobalKeys: number;
  /** A copy unused for this long is dropped. */
  copyIdleMs: number;
  /** Items or entries per frame. */
  maxBatchSize: number;
}

export interface HotKeysStats {
  /** Decisions answered from a local copy. */
  answeredFromCopy: number;
  /** Hits sent to owners. */
  hitsSent: number;
  /** Hits applied here as owner (including relayed ones). */
  hitsApplied: number;
  /** States broadcast (one per key and receiving node). */
  statesSent: number;
  /** States received into copies. */
  statesReceived: number;
  /** States dropped: their sender holds no copy of the key by the ring. */
  refusedStates: number;
  /** Hot keys refused a copy, or a broadcast mark, because maxGlobalKeys was reached. */
  overflow: number;
}

/** A non-owner's copy of one hot key: its state lives in the copies store; hits wait here until the next sync. */
interface HotCopy {
  action: string;
  key: string;
  /** Units admitted from the copy since the last sync, for the owner. */
  hits: number;
  /** The parameters of the first request of this round's hits: the owner applies the hits with them. */
  params: ResolvedParams | undefined;
  /** The sync round in which a request last used it (a counter, not a clock read per request). */
  lastUsedSync: number;
}

type Nested<T> = Map<string, Map<string, T>>;

/** The owner's answer to a request this node forwarded (it had no copy of the key then). */
type OwnerAnswer = { params: ResolvedParams; remaining: number; atMs: number };

/** How long an owner's answer bounds the copies made after it: longer than a broadcast takes to arrive. */
const OWNER_ANSWER_MS = 1_000;

/**
 * Hot-key mode (`global: true`), both ends. A non-owner answers from its copy of the
 * owner's state and counts the units it admitted; every globalSyncMs it sends them to the
 * owner (GlobalHits), which applies them through the one owner-side decision. The owner
 * broadcasts every hot key it decided since the last sync (GlobalState) to all other
 * nodes, after applying the hits, so a copy reflects over-limit as soon as the owner does.
 * A node with no copy yet forwards the request as usual; the owner's broadcast creates it.
 *
 * Accuracy: a copy is at most one sync plus one network delay behind the owner, so
 * over-admission per key is bounded by what the non-owners admit in that time, and never
 * exceeds (nodes − 1) × the remaining allowance at the last broadcast.
 */
export class HotKeys {
  private readonly counters: HotKeysStats = { answeredFromCopy: 0, hitsSent: 0, hitsApplied: 0, statesSent: 0, statesReceived: 0, refusedStates: 0, overflow: 0 };
  private copyStore: LimiterStore;
  private readonly copies: Nested<HotCopy> = new Map();
  private copyCount = 0;
  /** The owner's last answer per key forwarded without a copy: a broadcast sent before it may arrive after it (another stream). */
  private readonly answers: Nested<OwnerAnswer> = new Map();
  private answerCount = 0;
  /** Copies with hits to send, each once. */
  private readonly withHits: HotCopy[] = [];
  private readonly cells = new Float64Array(STATE_STRIDE);
  /** Syncs every globalSyncMs while there are copies, hits or marks; disarmed otherwise. */
  private readonly timer: WakeTimer;
  private lastSweepMs = 0;
  /** Sync rounds so far. */
  private syncs = 0;
  private closed = false;

  constructor(
    private readonly components: HotKeysComponents,
    private readonly init: HotKeysInit,
  ) {
    this.copyStore = this.newCopyStore();
    this.timer = new WakeTimer(() => {
      this.sync();
      return this.copyCount > 0 || this.withHits.length > 0 || components.marks.size > 0;
    }, init.globalSyncMs);
    components.marks.whenMarked(() => this.timer.wake());
  }

  /**
   * A non-owner's answer from its copy, or undefined when it has none (forward it: the
   * owner's broadcast will create it). Plain allows only: a reservation goes to the owner.
   */
  decideFromCopy(p: ResolvedRequest): Reservation | undefined {
    const copy = this.copies.get(p.action)?.get(p.key);
    if (copy === undefined) return undefined;
    const decision = this.copyStore.decideResolved(p, NO_WAIT);
    this.counters.answeredFromCopy++;
    copy.lastUsedSync = this.syncs;
    if (decision.allowed && p.cost > 0) {
      if (copy.hits === 0) {
        this.withHits.push(copy);
        // The limits the owner applies this round's hits with; a copy of its own, as `p` may be a caller's scratch object.
        copy.params = copyResolvedParams(p);
      }
      copy.hits += p.cost;
    }
    return decision;
  }

  /** GlobalHits from a non-owner: apply each item's hits as the owner, or relay them once to the owner this node knows. */
  receiveHits(items: ForwardItem[]): void {
    const { view } = this.components;
    const relays = new Map<string, ForwardItem[]>();
    for (const item of items) {
      if (!item.global || !(Number.isSafeInteger(item.cost) && item.cost > 0 && item.cost <= MAX_HITS_PER_ITEM)) continue;
      let p: ResolvedRequest;
      try {
        p = resolveOnce(requestOf({ ...item, cost: 1 }));
      } catch {
        continue; // a peer is not trusted: an item the limiter refuses changes nothing
      }
      const owner = view.ownerOf(p.action, p.key);
      const address = owner === this.init.selfId ? undefined : view.addressOf(owner);
      if (address !== undefined && item.hops < 1) {
        let list = relays.get(address);
        if (list === undefined) relays.set(address, (list = []));
        list.push({ ...item, hops: item.hops + 1 });
        continue;
      }
      this.applyHits(p, item.cost);
    }
    for (const [address, list] of relays) this.sendItems(address, list);
  }

  /**
   * GlobalState from an owner: each entry becomes (or refreshes) this node's copy, with the
   * hits not yet sent applied on top. Entries from a node that holds no copy of the key by
   * the ring are refused and counted.
   */
  receiveStates(entries: WireEntry[], from: string): void {
    const { view, clock } = this.components;
    const nowMs = clock.now();
    for (const entry of entries) {
      const verdict = view.judgeSender(from, entry.action, entry.key);
      if (verdict === SenderVerdict.Refused) {
        this.counters.refusedStates++;
        continue;
      }
      if (verdict === SenderVerdict.OwnedHere) continue; // this node decides it: no copy
      let copy = this.copies.get(entry.action)?.get(entry.key);
      if (copy === undefined) {
        if (this.copyCount >= this.init.maxGlobalKeys) {
          this.counters.overflow++;
          continue;
        }
        copy = { action: entry.action, key: entry.key, hits: 0, params: undefined, lastUsedSync: this.syncs };
        let keys = this.copies.get(entry.action);
        if (keys === undefined) this.copies.set(entry.action, (keys = new Map()));
        keys.set(entry.key, copy);
        this.copyCount++;
        this.timer.wake();
      }
      fromWireEntry(entry, nowMs, this.cells);
      this.copyStore.importEntry(entry.action, entry.key, entry.algorithm as AlgorithmId, this.cells, 0, 'replace');
      this.counters.statesReceived++;
      this.boundByAnswer(entry.action, entry.key, nowMs);
      // Hits admitted here since the last send are not in the owner's state yet.
      if (copy.hits > 0 && copy.params !== undefined) {
        // A state of another shape (the owner's key was fresh and re-described) refuses these hits: the owner's state stands.
        takeAdmitted((p) => this.copyStore.decideResolved(p, NO_WAIT), copy.params, copy.hits).catch(() => undefined);
      }
    }
  }

  /** The owner answered a plain allow of a hot key that this node forwarded: no copy made later may say more remains. */
  ownerAnswered(p: ResolvedRequest, r: Reservation): void {
    let keys = this.answers.get(p.action);
    const known = keys?.get(p.key);
    if (known === undefined && this.answerCount >= this.init.maxGlobalKeys) return;
    if (keys === undefined) this.answers.set(p.action, (keys = new Map()));
    keys.set(p.key, { params: copyResolvedParams(p, 0), remaining: r.remaining, atMs: this.components.clock.now() });
    if (known === undefined) this.answerCount++;
    // A copy made while the request was on its way may be older than the answer.
    if (this.copies.get(p.action)?.has(p.key) === true) this.boundByAnswer(p.action, p.key, this.components.clock.now());
  }

  /** Takes from the copy of (action, key) what the owner's answer says is gone (without counting hits), then forgets the answer. */
  private boundByAnswer(action: string, key: string, nowMs: number): void {
    const keys = this.answers.get(action);
    const answer = keys?.get(key);
    if (answer === undefined) return;
    keys!.delete(key);
    if (keys!.size === 0) this.answers.delete(action);
    this.answerCount--;
    if (nowMs - answer.atMs > OWNER_ANSWER_MS) return;
    const excess = this.copyStore.decideResolved(answer.params, NO_WAIT).remaining - answer.remaining;
    if (excess > 0) takeAdmitted((p) => this.copyStore.decideResolved(p, NO_WAIT), answer.params, excess).catch(() => undefined);
  }

  /** Membership changed: copies may come from a former owner, so drop them; the new owners' broadcasts replace them. */
  ownersChanged(): void {
    this.sendHits(); // to the owners in the new view
    this.copies.clear();
    this.copyCount = 0;
    this.answers.clear();
    this.answerCount = 0;
    this.copyStore = this.newCopyStore();
  }

  /** A copy of the counters, the marks' overflow included. */
  stats(): HotKeysStats {
    return { ...this.counters, overflow: this.counters.overflow + this.components.marks.overflow };
  }

  close(): void {
    this.closed = true;
    this.timer.close();
  }

  /** One sync: send the hits gathered here, broadcast the hot keys decided here, and now and then drop idle copies. */
  sync(): void {
    if (this.closed) return;
    this.syncs++;
    this.sendHits();
    this.broadcast();
    const nowMs = this.components.clock.now();
    if (nowMs - this.lastSweepMs >= Math.min(1_000, this.init.copyIdleMs)) {
      this.lastSweepMs = nowMs;
      this.dropIdleCopies();
    }
  }

  private sendHits(): void {
    if (this.withHits.length === 0) return;
    const { view } = this.components;
    const byAddress = new Map<string, ForwardItem[]>();
    for (const copy of this.withHits) {
      const p = copy.params;
      const hits = copy.hits;
      copy.hits = 0;
      if (p === undefined || hits === 0) continue;
      const owner = view.ownerOf(p.action, p.key);
      if (owner === this.init.selfId) {
        // This node owns the key now (a handoff mark expired without a ring change): no copy for it.
        this.applyHits(p, hits);
        this.dropCopy(copy);
        continue;
      }
      const address = view.addressOf(owner);
      if (address === undefined) continue;
      let list = byAddress.get(address);
      if (list === undefined) byAddress.set(address, (list = []));
      const item = forwardItem(0, p, NO_WAIT);
      item.cost = hits;
      item.global = true;
      list.push(item);
      this.counters.hitsSent += hits;
    }
    this.withHits.length = 0;
    for (const [address, items] of byAddress) this.sendItems(address, items);
  }

  private sendItems(address: string, items: ForwardItem[]): void {
    for (let i = 0; i < items.length; i += this.init.maxBatchSize) {
      this.components.transport.send(address, encodeFrame({ type: FrameType.GlobalHits, id: 0, items: items.slice(i, i + this.init.maxBatchSize) }));
    }
  }

  /** Sends the state of every hot key decided here since the last sync (and still owned here) to every other owner. */
  private broadcast(): void {
    const { view, store, clock, marks } = this.components;
    if (marks.size === 0) return;
    const nowMs = clock.now();
    const entries: WireEntry[] = [];
    marks.drain((action, key) => {
      if (!view.decidesHere(action, key)) return;
      const algorithm = store.readEntry(action, key, this.cells);
      if (algorithm !== -1) entries.push(toWireEntry(action, key, algorithm, this.cells, 0, nowMs));
    });
    if (entries.length === 0) return;
    for (const { nodeId, address } of view.ownerAddresses()) {
      if (nodeId === this.init.selfId || address === '') continue;
      for (let i = 0; i < entries.length; i += this.init.maxBatchSize) {
        const chunk = entries.slice(i, i + this.init.maxBatchSize);
        if (this.components.transport.send(address, encodeFrame({ type: FrameType.GlobalState, id: 0, entries: chunk }))) this.counters.statesSent += chunk.length;
      }
    }
  }

  /**
   * Applies `hits` units a non-owner already admitted, through the owner-side decision (a
   * pull, replication and the broadcast mark come with it). Units beyond what the key can
   * hold leave it empty: the owner's state then says over limit, which is what it broadcasts.
   */
  private applyHits(p: ResolvedRequest, hits: number): void {
    this.counters.hitsApplied += hits;
    takeAdmitted((q) => this.components.decision.decide(q, NO_WAIT), p, hits).catch(() => {
      // the request was validated; a failed pull or replication leaves the hits unapplied
    });
  }

  private dropCopy(copy: HotCopy): void {
    const keys = this.copies.get(copy.action);
    if (keys?.get(copy.key) !== copy) return;
    keys.delete(copy.key);
    if (keys.size === 0) this.copies.delete(copy.action);
    this.copyStore.delete(copy.action, copy.key);
    this.copyCount--;
  }

  private dropIdleCopies(): void {
    const nowMs = this.components.clock.now();
    for (const [action, keys] of this.answers) {
      for (const [key, answer] of keys) {
        if (nowMs - answer.atMs <= OWNER_ANSWER_MS) continue;
        keys.delete(key);
        this.answerCount--;
      }
      if (keys.size === 0) this.answers.delete(action);
    }
    const idleSyncs = Math.ceil(this.init.copyIdleMs / this.init.globalSyncMs);
    for (const [action, keys] of this.copies) {
      for (const [key, copy] of keys) {
        if (copy.hits > 0 || this.syncs - copy.lastUsedSync < idleSyncs) continue;
        keys.delete(key);
        this.copyStore.delete(action, key);
        this.copyCount--;
      }
      if (keys.size === 0) this.copies.delete(action);
    }
  }

  private newCopyStore(): LimiterStore {
    // Twice the copies it may hold: a copy is never evicted while the map still points to it.
    return new LimiterStore(this.components.clock, { maxKeys: 2 * this.init.maxGlobalKeys, initialKeys: 64 });
  }
}

/**
 * Takes `units` that were already admitted elsewhere: as much as the key holds, leaving it
 * empty past that. Runs synchronously to the end when `decide` answers synchronously
 * (an async function only yields at an await).
 */
async function takeAdmitted(decide: (p: ResolvedParams) => Reservation | Promise<Reservation>, params: ResolvedRequest, units: number): Promise<void> {
  const p = copyResolvedParams(params);
  const ceiling = mostUnitsHeld(p.algorithm, p.capacity, p.limit);
  for (let round = 0; units > 0 && round < MAX_APPLY_ROUNDS; round++) {
    p.cost = Math.min(units, ceiling);
    const answer = decide(p);
    const r = answer instanceof Promise ? await answer : answer;
    if (r.allowed) {
      units -= p.cost;
      continue;
    }
    if (r.remaining > 0 && r.remaining < p.cost) {
      p.cost = r.remaining;
      const last = decide(p);
      if (last instanceof Promise) await last;
    }
    return;
  }
}
