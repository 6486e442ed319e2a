import type { Clock } from '../../common/clock.js';
import type { LimiterStore } from '../../limiter/store.js';
import { AlgorithmId } from '../../limiter/types.js';
import { copyResolvedParams } from '../../limiter/validate.js';
import type { ClusterView } from '../routing/cluster-view.js';
import { requestOf } from '../routing/forward-codec.js';
import { resolveOnce, type OwnerDecision, type ResolvedRequest } from '../routing/owner-decision.js';
import { NO_WAIT } from '../routing/router.js';
import type { PeerTransport } from '../transport/peer-transport.js';
import { encodeFrame, frameLimits } from '../wire/codec.js';
import { AdminOp, FrameType, type ForwardItem, type LeaseAskBody, type LeaseGrantBody, type LeaseReturnBody } from '../wire/frames.js';
import { GrantLedger } from './grant-ledger.js';
import { sliceSize, type LeaseOptions } from './lease-options.js';

/**
 * Grants wait at most this long for one replication flush together, in ms: a flush per LeaseAsk
 * frame sent a Replicate frame (and waited for its Ack) every few asks, where async replication
 * sends one every replicationDelayMs (5 ms).
 */
const GRANT_FLUSH_MS = 5;

export interface LeaseGranterComponents {
  view: Pick<ClusterView, 'addressOf' | 'decidesHere'>;
  store: LimiterStore;
  /** The one owner-side decision: a grant is a decision of its size (pulls, the split rule and replication come with it). */
  decision: Pick<OwnerDecision, 'decideAsync'>;
  /** A grant is answered only once the replicas hold it as consumed: an owner that dies then never has it granted twice. */
  replication: { flushAndWait(): Promise<void>; changed(): void };
  clock: Clock;
  /** This side's share while the cluster is split (a slice is sized from what this side may spend); absent: 1. */
  split?: { readonly value: number };
  /** Grants go to the holder's address, on this node's stream to it: a frame arriving there names its sender (a reply on the holder's stream would not). */
  transport: Pick<PeerTransport, 'send'>;
}

export interface LeaseGranterStats {
  /** Asks answered with units. */
  grants: number;
  unitsGranted: number;
  /** Asks answered with none: not the owner, not a fixed window, nothing left, or maxGrants reached. */
  refused: number;
  /** Units holders gave back that were put back into their window. */
  unitsTakenBack: number;
  /** Returned units not put back: a window that rolled over, more than was granted, an owner that changed. */
  unitsNotTakenBack: number;
  /** Lease frames dropped: from a node that is not a member, or with implausible values. */
  droppedFrames: number;
}

/**
 * Leases, the owner's end: a LeaseAsk becomes a decision of the slice's size through the one
 * owner-side decision — the units are consumed here, replicated as consumed, and only then
 * granted — and a LeaseReturn puts back what a holder never used, for the same window only.
 * Leases are granted for fixed windows only, where both are exact (docs/decisions/0007).
 */
export class LeaseGranter {
  readonly stats: LeaseGranterStats = { grants: 0, unitsGranted: 0, refused: 0, unitsTakenBack: 0, unitsNotTakenBack: 0, droppedFrames: 0 };
  private readonly ledger: GrantLedger;
  private lastSweepMs = 0;
  /** Grants decided and waiting for the next replication flush, per holder address. */
  private readonly ready: { address: string; answers: LeaseGrantBody[] }[] = [];
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly components: LeaseGranterComponents,
    private readonly options: LeaseOptions,
    /** 0: a flush per LeaseAsk frame (tests, where time is a manual clock's). */
    private readonly grantFlushMs = GRANT_FLUSH_MS,
  ) {
    this.ledger = new GrantLedger(options.maxGrants);
  }

  /** Grants tracked now. */
  get tracked(): number {
    return this.ledger.size;
  }

  /**
   * A LeaseAsk frame from `from`: each ask becomes a decision of its slice's size (or a refusal);
   * once all are decided, one replication flush, then one LeaseGrant frame back with every answer.
   */
  receiveAsks(asks: LeaseAskBody[], from: string): void {
    const address = this.components.view.addressOf(from);
    if (address === undefined) {
      this.stats.droppedFrames += asks.length; // not a member
      return;
    }
    const answers: LeaseGrantBody[] = [];
    const pending: Promise<void>[] = [];
    for (const ask of asks) {
      const decided = this.answer(ask.item, ask.ratePerSec, from, answers);
      if (decided !== undefined) pending.push(decided);
    }
    if (pending.length === 0) return this.send(address, answers); // refusals: nothing consumed
    void Promise.all(pending).then(() => {
      this.ready.push({ address, answers });
      if (this.grantFlushMs === 0) this.flushGrants();
      else if (this.flushTimer === undefined) this.flushTimer = setTimeout(this.flushGrants, this.grantFlushMs).unref();
    });
  }

  /** Granted only once the replicas hold every slice as consumed: one replication flush for the grants of GRANT_FLUSH_MS. */
  private readonly flushGrants = (): void => {
    this.flushTimer = undefined;
    const batch = this.ready.splice(0);
    const sendAll = (): void => {
      for (const { address, answers } of batch) this.send(address, answers);
    };
    this.components.replication.flushAndWait().then(sendAll, sendAll);
  };

  private send(address: string, answers: LeaseGrantBody[]): void {
    if (answers.length === 0) return;
    for (const g of answers) {
      if (g.units === 0) continue;
      this.stats.grants++;
      this.stats.unitsGranted += g.units;
    }
    for (let i = 0; i < answers.length; i += frameLimits.maxItems) this.components.transport.send(address, encodeFrame({ type: FrameType.LeaseGrant, id: 0, grants: answers.slice(i, i + frameLimits.maxItems) }));
  }

  close(): void {
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
  }

  /** One ask: a refusal pushed into `answers` at once, or a promise that pushes the grant (or a refusal) once decided. */
  private answer(item: ForwardItem, ratePerSec: number, from: string, answers: LeaseGrantBody[]): Promise<void> | undefined {
    const { view, clock } = this.components;
    const refuse = (): undefined => {
      this.stats.refused++;
      answers.push({ id: item.id, action: item.action, key: item.key, units: 0, expiresInMs: 0, resetInMs: 0, epoch: 0 });
      return undefined;
    };
    if (!this.options.enabled) return refuse();
    if (item.op !== AdminOp.Decide || item.maxWaitMs !== NO_WAIT || !(item.cost >= 1 && Number.isSafeInteger(item.cost))) {
      this.stats.droppedFrames++;
      return undefined;
    }
    let p: ResolvedRequest;
    try {
      p = resolveOnce(requestOf({ ...item, cost: 1, global: false }));
    } catch {
      this.stats.droppedFrames++; // a peer is not trusted: a request the limiter refuses is dropped
      return undefined;
    }
    const nowMs = clock.now();
    this.sweep(nowMs);
    if (p.algorithm !== AlgorithmId.FixedWindow || !view.decidesHere(p.action, p.key)) return refuse();
    const share = this.ledger.share(p.action, p.key, from, ratePerSec, nowMs);
    if (share === undefined) return refuse();
    const spendable = this.components.store.inspectResolved(p).remaining * Math.min(1, this.components.split?.value ?? 1);
    const units = sliceSize(Math.min(item.cost, p.limit), spendable, share, this.options.maxSliceFraction);
    if (units === 0) return refuse();
    return this.components.decision.decideAsync(copyResolvedParams(p, units), NO_WAIT).then(
      (r) => {
        const takenAtMs = clock.now();
        const epoch = this.components.store.windowStartOf(p.action, p.key);
        // Before the end of the window the units were taken from, the state is still in it: `epoch` names that window.
        if (!r.allowed || epoch === undefined || !(takenAtMs < r.resetAtMs)) return void refuse();
        // From the moment the units were taken: the holder counts from its ask's sending, earlier.
        const expiresInMs = Math.max(0, Math.floor(Math.min(this.options.leaseTtlMs, r.resetAtMs - takenAtMs)));
        this.ledger.granted(p.action, p.key, from, epoch, units, r.resetAtMs);
        answers.push({ id: item.id, action: p.action, key: p.key, units, expiresInMs, resetInMs: r.resetAtMs - takenAtMs, epoch });
      },
      () => void refuse(),
    );
  }

  /** A LeaseReturn frame from `from`: each return put back into its window, up to what that holder was granted for it. */
  receiveReturns(returns: LeaseReturnBody[], from: string): void {
    const { view, clock, store } = this.components;
    if (view.addressOf(from) === undefined) {
      this.stats.droppedFrames += returns.length; // not a member
      return;
    }
    const nowMs = clock.now();
    let changed = false;
    for (const { action, key, units, epoch } of returns) {
      if (units < 1) {
        this.stats.droppedFrames++;
        continue;
      }
      const allowedBack = view.decidesHere(action, key) ? this.ledger.takeBack(action, key, from, epoch, units, nowMs) : 0;
      const back = allowedBack > 0 ? store.giveBack(action, key, epoch, allowedBack) : 0;
      changed ||= back > 0;
      this.stats.unitsTakenBack += back;
      this.stats.unitsNotTakenBack += units - back;
    }
    if (changed) this.components.replication.changed();
  }

  /** Ownership changed: what was granted may be another owner's to take back now; returns give back nothing until the next grants. */
  ownersChanged(): void {
    this.ledger.clear();
  }

  private sweep(nowMs: number): void {
    if (nowMs - this.lastSweepMs < 1_000) return;
    this.lastSweepMs = nowMs;
    this.ledger.sweep(nowMs);
  }
}
