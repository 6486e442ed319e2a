import { allocateShares, fairShareDefaults, type DemandReport, type NodeDemand } from '../../limiter/fair-share.js';
import type { LimiterStore } from '../../limiter/store.js';
import type { Clock } from '../../common/clock.js';
import type { ClusterView } from '../routing/cluster-view.js';
import { WakeTimer } from '../../common/wake-timer.js';
import type { PeerTransport } from '../transport/peer-transport.js';
import { encodeFrame } from '../wire/codec.js';
import { FrameType, type DemandRow } from '../wire/frames.js';

/** The ring key whose owner coordinates an action's shared capacity. */
export const COORDINATOR_KEY = '\u0000fair-share';

export interface FairShareSyncComponents {
  store: LimiterStore;
  view: ClusterView;
  transport: PeerTransport;
  clock: Clock;
}

export interface FairShareSyncInit {
  selfId: string;
  /** How often nodes report demand and the coordinator allocates. */
  intervalMs: number;
  /** Users reported per action and frame. */
  maxReportUsers: number;
}

export interface FairShareStats {
  reportsSent: number;
  reportsReceived: number;
  allocationsSent: number;
  allocationsReceived: number;
  /** Reports sent to a node that does not coordinate the action, and allocations from one that does not. */
  refused: number;
}

/**
 * Weighted fair share across a cluster. Each action with a shared capacity has a
 * coordinator: the owner of (action, COORDINATOR_KEY) on the ring. Every interval each node
 * reports its users' measured demand for the action to the coordinator; the coordinator
 * merges the reports (a user's demand summed over the nodes it comes through), computes
 * the weighted max-min shares of the capacity, and sends each node the shares of the users
 * it reported (whole: the user's key has one state, at its owner). A node enforces what it was
 * allocated; when the allocations go stale (three intervals: the coordinator is gone or
 * unreachable) it falls back to computing shares from its own demand.
 */
export class FairShareSync {
  readonly stats: FairShareStats = { reportsSent: 0, reportsReceived: 0, allocationsSent: 0, allocationsReceived: 0, refused: 0 };
  /** action → node → its reports of the last DEMAND_HOLD_INTERVALS intervals, newest last. */
  private readonly reports = new Map<string, Map<string, NodeReports>>();
  private readonly timer: WakeTimer;
  private nextId = 1;

  constructor(
    private readonly components: FairShareSyncComponents,
    private readonly init: FairShareSyncInit,
  ) {
    this.timer = new WakeTimer(() => this.tick(), init.intervalMs);
  }

  /** Policies with a shared capacity are in force: start reporting. */
  wake(): void {
    this.timer.wake();
  }

  close(): void {
    this.timer.close();
  }

  /** One interval: report this node's demand, then allocate for the actions this node coordinates. */
  tick(): boolean {
    const { store, view, transport } = this.components;
    const nowMs = this.components.clock.now();
    for (const [action, capacity] of store.sharedCapacities()) {
      const reports = capacity.demands(this.init.maxReportUsers);
      const coordinator = view.ownerOf(action, COORDINATOR_KEY);
      if (coordinator === this.init.selfId) {
        this.receiveDemand(action, this.init.selfId, reports.map(toRow));
        continue;
      }
      const address = view.addressOf(coordinator);
      if (address !== undefined && transport.send(address, encodeFrame({ type: FrameType.FairDemand, id: this.nextId++, action, reports: reports.map(toRow) }))) this.stats.reportsSent++;
    }
    this.allocate(nowMs);
    return store.policies?.hasShared === true || this.reports.size > 0;
  }

  /** A node's demand for an action this node coordinates. */
  receiveDemand(action: string, fromNodeId: string, rows: DemandRow[]): void {
    const { view, store, clock } = this.components;
    if (!view.decidesHere(action, COORDINATOR_KEY) || store.policies?.sharedCapacity(action) === undefined) {
      this.stats.refused++;
      return;
    }
    let byNode = this.reports.get(action);
    if (byNode === undefined) {
      if (this.reports.size >= MAX_COORDINATED_ACTIONS) return;
      this.reports.set(action, (byNode = new Map()));
    }
    if (!byNode.has(fromNodeId) && byNode.size >= view.ownerIds().length + 1) return; // one report per member
    const nowMs = clock.now();
    const recent = (byNode.get(fromNodeId) ?? []).filter((r) => nowMs - r.atMs <= DEMAND_HOLD_INTERVALS * this.init.intervalMs).slice(-(DEMAND_HOLD_INTERVALS - 1));
    recent.push({ atMs: nowMs, reports: rows.map(([user, weight, rate, ownRate]) => ({ user, weight, rate, ownRate })) });
    byNode.set(fromNodeId, recent);
    if (fromNodeId !== this.init.selfId) this.stats.reportsReceived++;
    this.timer.wake();
  }

  /** The coordinator's shares for this node's users of `action`. */
  receiveShares(action: string, fromNodeId: string, levelPerWeight: number, shares: [string, number][]): void {
    const { view, store, clock } = this.components;
    const capacity = store.sharedCapacities().get(action);
    if (capacity === undefined) return;
    if (fromNodeId !== this.init.selfId && view.ownerOf(action, COORDINATOR_KEY) !== fromNodeId) {
      this.stats.refused++;
      return;
    }
    capacity.setAllocations(new Map(shares), levelPerWeight, clock.now() + STALE_AFTER_INTERVALS * this.init.intervalMs);
    if (fromNodeId !== this.init.selfId) this.stats.allocationsReceived++;
  }

  private allocate(nowMs: number): void {
    const { view, store, transport } = this.components;
    for (const [action, byNode] of this.reports) {
      const capacityPerMs = store.policies?.sharedCapacity(action);
      if (capacityPerMs === undefined || !view.decidesHere(action, COORDINATOR_KEY)) {
        this.reports.delete(action); // no longer ours to coordinate
        continue;
      }
      const nodes: NodeDemand[] = [];
      for (const [node, recent] of byNode) {
        const latest = recent.at(-1);
        if (latest === undefined || nowMs - latest.atMs > STALE_AFTER_INTERVALS * this.init.intervalMs) byNode.delete(node);
        else nodes.push({ node, reports: heldDemand(recent, nowMs - DEMAND_HOLD_INTERVALS * this.init.intervalMs) });
      }
      if (nodes.length === 0) {
        this.reports.delete(action);
        continue;
      }
      const { allocations, levelPerWeight } = allocateShares(nodes, capacityPerMs, fairShareDefaults.headroom);
      for (const { node, shares } of allocations) {
        const rows = [...shares];
        if (node === this.init.selfId) {
          this.receiveShares(action, node, levelPerWeight, rows);
          continue;
        }
        const address = view.addressOf(node);
        if (address !== undefined && transport.send(address, encodeFrame({ type: FrameType.FairShares, id: this.nextId++, action, levelPerWeight, shares: rows }))) this.stats.allocationsSent++;
      }
    }
  }
}

/** Allocations not renewed for this many intervals are stale: the node computes its own shares again. */
const STALE_AFTER_INTERVALS = 3;

/**
 * A user's demand at the coordinator is the highest a node reported for it over this many
 * intervals (1 s at 250 ms). A node measures demand per interval from the requests that
 * arrived in it, so a steady user's measured rate dips whenever its requests come late (its
 * caller or the node paused: a busy machine, a GC) and jumps when they arrive together. The
 * share allocated from one dipped report was below the user's steady demand, and the
 * requests that then came at once were refused: a light user asking 10/s through one node got
 * 15 of 20 on a busy machine. Holding the recent peak allocates what the user steadily asks
 * (a user whose demand falls keeps its claim for at most one hold).
 */
const DEMAND_HOLD_INTERVALS = 4;

/** One node's reports for one action: what it reported and when, newest last. */
type NodeReports = { atMs: number; reports: DemandReport[] }[];

/** The users of the node's latest report, each at the highest rate reported for it since `sinceMs`. */
function heldDemand(recent: NodeReports, sinceMs: number): DemandReport[] {
  const latest = recent.at(-1)!.reports;
  const peak = new Map<string, number>();
  for (const entry of recent) {
    if (entry.atMs < sinceMs) continue;
    for (const r of entry.reports) peak.set(r.user, Math.max(peak.get(r.user) ?? 0, r.rate));
  }
  return latest.map((r) => ({ ...r, rate: Math.max(r.rate, peak.get(r.user) ?? 0) }));
}
/** Actions one coordinator tracks at once. */
const MAX_COORDINATED_ACTIONS = 1_000;

const toRow = (r: DemandReport): DemandRow => [r.user, r.weight, r.rate, r.ownRate];
