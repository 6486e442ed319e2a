import type { Clock } from '../../common/clock.js';
import type { Member } from '../../gossip/index.js';
import type { SplitShareReader } from '../routing/owner-decision.js';
import { META_STATE, type ClusterView } from '../routing/cluster-view.js';

export interface SplitShareInit {
  selfId: string;
  /** How long a member that vanished without leaving still counts as part of the cluster (0: the rule is off). */
  splitShareMs: number;
  /** Members remembered at most. */
  maxKnownMembers: number;
}

export interface SplitShareStats {
  /** Times the share dropped below 1 (a split, a crash, a restart alone). */
  splits: number;
  /** Members out of reach now (vanished without leaving, not yet forgotten). */
  missing: number;
}

/** A member present now. */
const PRESENT = -1;

/**
 * The longest a member back from out of reach still counts as missing while the states of the
 * split merge (see observe). Past it the side decides alone again even if an announcement was lost.
 */
export const RETURN_SETTLE_MAX_MS = 10_000;

/**
 * "Each side of a split spends only its share." The members this node has seen active, and
 * that did not leave gracefully, are the cluster as it was. While some of them are out of
 * reach — suspected, declared dead, or (after this node restarted) not seen again yet — this
 * side's share is the part of that cluster it still reaches, and each decision here takes
 * cost / share units of its key's state (OwnerDecision): from a state with R remaining this
 * side admits at most share × R, so the sides of a split together admit at most R. A member
 * out of reach for splitShareMs is forgotten (declared dead): the sides then decide alone
 * again, the documented bound for a longer split.
 */
export class SplitShare implements SplitShareReader {
  value = 1;
  readonly stats: SplitShareStats = { splits: 0, missing: 0 };
  /** nodeId → when it went out of reach (clock ms), or PRESENT. */
  private readonly known = new Map<string, number>();
  /** Members back in reach whose states have not merged with this side's yet → when they came back. */
  private readonly returning = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private nextExpiryMs = Infinity;
  private readonly isMissing = (nodeId: string): boolean => (this.known.get(nodeId) ?? PRESENT) !== PRESENT;

  readonly enabled: boolean;

  constructor(
    private readonly components: { clock: Clock; view: ClusterView },
    private readonly init: SplitShareInit,
  ) {
    this.enabled = init.splitShareMs > 0;
    this.known.set(init.selfId, PRESENT);
  }

  /**
   * The members as gossip sees them now (after every membership event). A member back in reach
   * still counts as missing until the two sides' states have merged — it announced its push for
   * the current ring and this node announced its own (ClusterView.hasHandedOver), at most
   * RETURN_SETTLE_MAX_MS: until then a key the other side spent is known here only by this
   * side's part, and a share of 1 would admit the other side's spending again.
   */
  observe(members: readonly Member[]): void {
    const reachable = new Set<string>([this.init.selfId]);
    for (const m of members) {
      const state = m.meta[META_STATE];
      if (m.state !== 'alive' || (state !== 'active' && state !== 'draining')) continue;
      reachable.add(m.nodeId);
      if (!this.known.has(m.nodeId) && this.known.size < this.init.maxKnownMembers) this.known.set(m.nodeId, PRESENT);
    }
    const nowMs = this.components.clock.now();
    for (const [nodeId, since] of this.known) {
      if (reachable.has(nodeId)) {
        if (since !== PRESENT) {
          this.known.set(nodeId, PRESENT);
          if (this.returning.size < this.init.maxKnownMembers) this.returning.set(nodeId, nowMs);
        }
      } else {
        if (since === PRESENT) this.known.set(nodeId, nowMs);
        this.returning.delete(nodeId);
      }
    }
    this.recompute();
  }

  /** A member announced a push (ClusterView.onHandoffNews): a member back in reach may now have merged. */
  handoffNews(): void {
    if (this.returning.size !== 0) this.recompute();
  }

  /** `nodeId` left gracefully: it handed its keys over, so it no longer counts. */
  left(nodeId: string): void {
    this.returning.delete(nodeId);
    if (nodeId !== this.init.selfId && this.known.delete(nodeId)) this.recompute();
  }

  /** After a restart: the members the last snapshot saw count as out of reach until they are seen. */
  remember(nodeIds: readonly string[]): void {
    const nowMs = this.components.clock.now();
    for (const nodeId of nodeIds) if (!this.known.has(nodeId) && this.known.size < this.init.maxKnownMembers) this.known.set(nodeId, nowMs);
    this.recompute();
  }

  /** The cluster as this node knows it: present and missing members, itself included, sorted (what a snapshot records). */
  knownMembers(): string[] {
    return [...this.known.keys()].sort();
  }

  /**
   * Every holder of (action, key) on the ring as it was is out of reach: if the key was in use,
   * its state is on the other side only. With a holder on this side, that holder would have
   * it (it decides here, as the first holder in reach): a key it has no state for was not in
   * use, and starts fresh at the share on each side — together still at most its limit.
   */
  unknownElsewhere(action: string, key: string): boolean {
    return this.components.view.allKnownHolders(action, key, this.isMissing);
  }

  retryAfterMs(): number {
    return Math.max(1, Math.min(1_000, this.nextExpiryMs - this.components.clock.now()));
  }

  now(): number {
    return this.components.clock.now();
  }

  close(): void {
    clearTimeout(this.timer);
  }

  private recompute(): void {
    const nowMs = this.components.clock.now();
    let present = 0;
    let missing = 0;
    this.nextExpiryMs = Infinity;
    const view = this.components.view;
    const selfHanded = this.returning.size !== 0 && view.hasHandedOver(this.init.selfId);
    for (const [nodeId, at] of this.returning) {
      if ((selfHanded && view.hasHandedOver(nodeId)) || nowMs - at >= RETURN_SETTLE_MAX_MS) this.returning.delete(nodeId);
      else this.nextExpiryMs = Math.min(this.nextExpiryMs, at + RETURN_SETTLE_MAX_MS);
    }
    for (const [nodeId, since] of this.known) {
      if (since === PRESENT && this.returning.has(nodeId)) {
        missing++;
      } else if (since === PRESENT) {
        present++;
      } else if (nowMs - since >= this.init.splitShareMs) {
        this.known.delete(nodeId); // declared dead
      } else {
        missing++;
        this.nextExpiryMs = Math.min(this.nextExpiryMs, since + this.init.splitShareMs);
      }
    }
    const before = this.value;
    this.value = missing === 0 ? 1 : present / (present + missing);
    if (this.value < 1 && before >= 1) this.stats.splits++;
    this.stats.missing = missing;
    this.components.view.setKnownMembers(missing === 0 ? undefined : [...this.known.keys()]);
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.nextExpiryMs !== Infinity) {
      this.timer = setTimeout(() => this.recompute(), Math.max(1, this.nextExpiryMs - nowMs));
      this.timer.unref();
    }
  }
}
