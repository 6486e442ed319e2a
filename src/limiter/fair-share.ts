/**
 * Weighted fair share of a shared capacity: pure functions and a small controller.
 *
 * weightedMaxMin() is water-filling: every user with demand gets capacity in proportion to
 * its weight, except that a user who needs less than that share gets what it needs and
 * leaves the rest to the others (max-min fairness, weighted). Capacity left over when
 * every demand is met is given out by weight too, so a user whose demand grows has room
 * before the next recomputation.
 */

export interface Claim {
  weight: number;
  /** What the user asks for (units per ms), already capped by its own limit. */
  demand: number;
}

/** Shares (units per ms) for `claims`, in the same order; their sum is `capacity` whenever some claim exists. */
export function weightedMaxMin(claims: readonly Claim[], capacity: number): number[] {
  const shares = new Array<number>(claims.length).fill(0);
  if (claims.length === 0 || !(capacity > 0)) return shares;
  // Users in the order they saturate: smallest demand per unit of weight first.
  const order = claims.map((_, i) => i).sort((a, b) => claims[a]!.demand / claims[a]!.weight - claims[b]!.demand / claims[b]!.weight);
  let left = capacity;
  let weightLeft = 0;
  for (const c of claims) weightLeft += c.weight;
  let k = 0;
  for (; k < order.length; k++) {
    const i = order[k]!;
    const fair = (left * claims[i]!.weight) / weightLeft;
    if (claims[i]!.demand > fair) break;
    shares[i] = claims[i]!.demand;
    left -= claims[i]!.demand;
    weightLeft -= claims[i]!.weight;
  }
  if (k < order.length) {
    // Contended: the unsatisfied share what is left by weight.
    for (let j = k; j < order.length; j++) shares[order[j]!] = (left * claims[order[j]!]!.weight) / weightLeft;
  } else if (left > 0) {
    // Every demand met: the rest goes out by weight, as headroom.
    let total = 0;
    for (const c of claims) total += c.weight;
    for (let i = 0; i < claims.length; i++) shares[i]! += (left * claims[i]!.weight) / total;
  }
  return shares;
}

/** Jain's fairness index of `values`: 1 when all are equal, 1/n when one takes everything. */
export function jainIndex(values: readonly number[]): number {
  let sum = 0;
  let squares = 0;
  for (const v of values) {
    sum += v;
    squares += v * v;
  }
  return values.length === 0 || squares === 0 ? 1 : (sum * sum) / (values.length * squares);
}

export interface FairShareOptions {
  /** How often demand is measured and shares recomputed. */
  intervalMs: number;
  /** Weight of the newest interval in the demand average (exponential). */
  smoothing: number;
  /** Users tracked per action; past it new users get the default share without being counted. */
  maxUsers: number;
  /** A user with no request for this long leaves the computation. */
  idleMs: number;
  /** A new user triggers a recomputation at once (at most this often, and only up to earlyRecomputeMaxUsers users). */
  earlyRecomputeMs: number;
  earlyRecomputeMaxUsers: number;
  /** What a user claims beyond its measured demand (0.1: 10 %), so that a steady or growing user is not held at its last rate. */
  headroom: number;
}

export const fairShareDefaults: FairShareOptions = { intervalMs: 250, smoothing: 0.5, maxUsers: 100_000, idleMs: 2_000, earlyRecomputeMs: 10, earlyRecomputeMaxUsers: 10_000, headroom: 0.1 };

interface UserDemand {
  weight: number;
  /** Units asked for in the current interval (allowed or not), capped per request by the user's own limit rate later. */
  asked: number;
  /** Smoothed demand, units per ms. */
  rate: number;
  /** The user's own limit as a rate (units per ms): it never needs more. */
  ownRate: number;
  lastSeenMs: number;
  /** When it was first seen: its first measurement covers only the time since (not the whole interval). */
  firstSeenMs: number;
  /** Its share, units per ms. */
  share: number;
  /** Whether `rate` was measured yet (a new user's is its claim until then). */
  measured: boolean;
}

/** One user's measured demand, as a node reports it to the action's coordinator. */
export interface DemandReport {
  user: string;
  weight: number;
  /** Units per ms. */
  rate: number;
  /** The user's own limit, units per ms. */
  ownRate: number;
}

/**
 * One action's shared capacity on one process: records what each user asks for, and every
 * interval recomputes the weighted max-min shares from the smoothed demand — or, in a
 * cluster, takes the shares the action's coordinator allocated to this node (see
 * setAllocations), falling back to its own computation when they go stale.
 */
export class SharedCapacity {
  private readonly users = new Map<string, UserDemand>();
  private lastComputeMs: number;
  private weightSum = 0;
  /** The coordinator's allocations for this node's users, its share per unit of weight for the others, and until when they hold. */
  private allocations: Map<string, number> | undefined;
  private allocatedLevel = 0;
  private allocatedUntilMs = -Infinity;

  constructor(
    /** Units per ms the action may take in all. */
    readonly capacityPerMs: number,
    private readonly options: FairShareOptions,
    nowMs: number,
  ) {
    this.lastComputeMs = nowMs;
  }

  /**
   * A request of `user` (weight, its own limit per ms, the units it asks): counted, and its
   * share returned (units per ms). A user not seen before gets an equal-weight slice of the
   * capacity until the next computation.
   */
  ask(user: string, weight: number, ownRate: number, units: number, nowMs: number): number {
    let d = this.users.get(user);
    let arrived = false;
    if (d === undefined) {
      const share = (this.capacityPerMs * weight) / (this.weightSum + weight);
      if (this.users.size >= this.options.maxUsers) return share;
      // Until its demand is measured a new user claims all its own limit allows: its fair share at once.
      d = { weight, asked: 0, rate: ownRate, ownRate, lastSeenMs: nowMs, firstSeenMs: nowMs, share, measured: false };
      this.users.set(user, d);
      this.weightSum += weight;
      arrived = true;
    }
    d.asked += units;
    d.lastSeenMs = nowMs;
    if (d.weight !== weight) {
      this.weightSum += weight - d.weight;
      d.weight = weight;
    }
    d.ownRate = ownRate;
    const sinceMs = nowMs - this.lastComputeMs;
    if (sinceMs >= this.options.intervalMs) this.compute(nowMs);
    else if (arrived && sinceMs >= this.options.earlyRecomputeMs && this.users.size <= this.options.earlyRecomputeMaxUsers) this.reshare();
    if (nowMs < this.allocatedUntilMs) return this.allocations!.get(user) ?? this.allocatedLevel * weight;
    return d.share;
  }

  /** Measures the demand since the last computation and recomputes the shares. */
  compute(nowMs: number): void {
    const since = this.lastComputeMs;
    const elapsed = Math.max(1, nowMs - since);
    this.lastComputeMs = nowMs;
    const alpha = this.options.smoothing;
    for (const [user, d] of this.users) {
      if (nowMs - d.lastSeenMs > this.options.idleMs) {
        this.users.delete(user);
        this.weightSum -= d.weight;
        continue;
      }
      if (d.measured) d.rate = alpha * (d.asked / elapsed) + (1 - alpha) * d.rate;
      else {
        // The first measurement replaces a new user's claim outright, over the time it was
        // there (not the whole interval: that would start it far below its rate). A short
        // time says little: it never claims more than its own limit, its claim until now.
        const present = Math.max(1, nowMs - Math.max(d.firstSeenMs, since));
        d.rate = Math.min(d.asked / present, d.ownRate);
      }
      d.measured = true;
      d.asked = 0;
    }
    this.reshare();
  }

  /** Shares from the demand as measured so far (a new user counting at its claim). */
  private reshare(): void {
    const claims: Claim[] = [];
    const live: UserDemand[] = [];
    const growth = 1 + this.options.headroom;
    for (const d of this.users.values()) {
      claims.push({ weight: d.weight, demand: Math.min(d.rate * growth, d.ownRate) });
      live.push(d);
    }
    const shares = weightedMaxMin(claims, this.capacityPerMs);
    for (let i = 0; i < live.length; i++) live[i]!.share = shares[i]!;
  }

  /** The measured demand of every user with some, for the coordinator (at most `max`). */
  demands(max: number): DemandReport[] {
    const out: DemandReport[] = [];
    for (const [user, d] of this.users) {
      if (out.length >= max) break;
      if (d.measured && d.rate > 0) out.push({ user, weight: d.weight, rate: d.rate, ownRate: d.ownRate });
    }
    return out;
  }

  /** The coordinator's shares for this node (units per ms): in force until `untilMs`, then this node computes its own again. */
  setAllocations(shares: Map<string, number>, levelPerWeight: number, untilMs: number): void {
    this.allocations = shares;
    this.allocatedLevel = levelPerWeight;
    this.allocatedUntilMs = untilMs;
  }

  /** Users counted now. */
  get userCount(): number {
    return this.users.size;
  }
}

/** A node's demand reports for one action, as the coordinator keeps them. */
export interface NodeDemand {
  node: string;
  reports: readonly DemandReport[];
}

/** What the coordinator gives each node: the shares of the users it reported. */
export interface Allocation {
  node: string;
  shares: Map<string, number>;
}

/**
 * The coordinator's computation for one action: every node's reports merged per user (the
 * rates summed, the own limit the largest), the weighted max-min shares computed over the
 * cluster's demand, and each node given the shares of the users it reported: a user's share
 * is the limit of its key, whose state one owner holds, so every node applies all of it.
 * Also returns the share per unit of weight of an unsatisfied user (or of the headroom),
 * for users a node has not reported yet.
 */
export function allocateShares(nodes: readonly NodeDemand[], capacityPerMs: number, headroom: number): { allocations: Allocation[]; levelPerWeight: number } {
  const merged = new Map<string, { weight: number; rate: number; ownRate: number }>();
  for (const n of nodes) {
    for (const r of n.reports) {
      const m = merged.get(r.user);
      if (m === undefined) merged.set(r.user, { weight: r.weight, rate: r.rate, ownRate: r.ownRate });
      else {
        m.rate += r.rate;
        m.ownRate = Math.max(m.ownRate, r.ownRate);
      }
    }
  }
  const users = [...merged.keys()];
  const claims = users.map((u) => {
    const m = merged.get(u)!;
    return { weight: m.weight, demand: Math.min(m.rate * (1 + headroom), m.ownRate) };
  });
  const shares = weightedMaxMin(claims, capacityPerMs);
  const global = new Map<string, number>();
  users.forEach((u, i) => global.set(u, shares[i]!));
  // For users not reported yet: contended, the level of those held below their demand; else the spare capacity per unit of weight (never the headroom others were given).
  let claimed = 0;
  let weights = 0;
  let level = 0;
  claims.forEach((c, i) => {
    claimed += c.demand;
    weights += c.weight;
    if (shares[i]! < c.demand - 1e-12) level = Math.max(level, shares[i]! / c.weight);
  });
  const levelPerWeight = claimed >= capacityPerMs ? level : weights === 0 ? 0 : (capacityPerMs - claimed) / weights;
  // A user's share is the limit of its one key, decided at its owner whichever node a request enters by: every node gets the whole share.
  const allocations = nodes.map((n) => {
    const mine = new Map<string, number>();
    for (const r of n.reports) mine.set(r.user, global.get(r.user)!);
    return { node: n.node, shares: mine };
  });
  return { allocations, levelPerWeight };
}
