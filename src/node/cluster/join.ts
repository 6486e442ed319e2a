import type { SwimMembership } from '../../gossip/index.js';

/** A full-state sync can span several datagrams: the view is complete once it stops growing for a while. */
const JOIN_SETTLE_MS = 150;
const JOIN_SETTLE_MAX_MS = 3_000;
/** A member whose seeds did not answer tries them again after this long, doubling up to the max. */
const REJOIN_BACKOFF_MIN_MS = 1_000;
const REJOIN_BACKOFF_MAX_MS = 30_000;

export interface JoinInit {
  join: string[];
  /** Give up (throw) when no seed answers within the gossip join timeout; undefined: go on alone and retry. */
  joinTimeoutMs: number | undefined;
}

export interface JoinHooks {
  warn(message: string): void;
  /** Whether the node is closing (a retry stops then). */
  closed(): boolean;
}

/**
 * Joins the cluster through its seeds and waits for the view to settle. When no seed answers:
 * with joinTimeoutMs, throws; else the node goes on as a one-node cluster while the seeds are
 * tried again in the background (rejoin), each failure logged.
 */
export async function joinSeeds(swim: SwimMembership, init: JoinInit, hooks: JoinHooks): Promise<void> {
  try {
    await swim.join(init.join);
    await settled(() => swim.members().length, JOIN_SETTLE_MS, JOIN_SETTLE_MAX_MS);
  } catch (error) {
    if (init.joinTimeoutMs !== undefined || hooks.closed()) throw error;
    hooks.warn(`${(error as Error).message}; running as a one-node cluster, trying the seeds again`);
    void rejoin(swim, init.join, hooks);
  }
}

/** Tries the seeds again, with backoff, until one answers or the node closes; each failure is logged. */
async function rejoin(swim: SwimMembership, seeds: string[], hooks: JoinHooks): Promise<void> {
  let backoffMs = REJOIN_BACKOFF_MIN_MS;
  while (!hooks.closed()) {
    // An unref'd wait: a stopped node's process does not stay up for it.
    await new Promise((resolve) => setTimeout(resolve, backoffMs).unref());
    if (hooks.closed()) return;
    try {
      await swim.join(seeds);
      return;
    } catch (error) {
      if (hooks.closed()) return;
      backoffMs = Math.min(REJOIN_BACKOFF_MAX_MS, backoffMs * 2);
      hooks.warn(`${(error as Error).message}; still a one-node cluster, trying again in ${backoffMs} ms`);
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function settled(read: () => number, quietMs: number, maxMs: number): Promise<void> {
  const deadline = Date.now() + maxMs;
  let last = read();
  let quietSince = Date.now();
  while (Date.now() < deadline && Date.now() - quietSince < quietMs) {
    await sleep(20);
    const now = read();
    if (now !== last) {
      last = now;
      quietSince = Date.now();
    }
  }
}
