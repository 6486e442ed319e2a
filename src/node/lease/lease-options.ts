import { invalidArgument } from '../../common/errors.js';

/**
 * Leases (docs/node.md, docs/decisions/0007): a busy key's owner grants a member a slice of the
 * key's remaining allowance, which that member then spends locally, without a hop. Every
 * tunable, its default and its check are here.
 */
export interface LeaseOptions {
  /** Off by default: a member asks for leases, and grants them, only when enabled. */
  enabled: boolean;
  /** The longest a slice may be used, in ms; the end of the window it was taken from bounds it too. */
  leaseTtlMs: number;
  /** A key this member forwards at this many requests per second or more gets a lease. */
  thresholdPerSec: number;
  /** Actions whose keys get a lease from their first forward, whatever their rate (forced per policy). */
  actions: string[];
  /** Leases a holder keeps at once, and keys it measures for one; past it, keys are forwarded as usual. */
  maxLeases: number;
  /** Grants an owner tracks at once (what each holder may give back); past it, asks are refused. */
  maxGrants: number;
  /** A slice is at most this fraction of the key's remaining allowance, so several holders coexist. */
  maxSliceFraction: number;
  /** A holder asks for more when its slice is down to this fraction of the last grant, or half its life has gone. */
  lowWaterFraction: number;
  /** A lease unused this long is given back (the key cooled), in ms. */
  idleMs: number;
  /** Taken off every lease's end at the holder, besides 0.1 % of its length, for clocks that run at different rates, in ms. */
  marginMs: number;
}

export const leaseDefaults: LeaseOptions = {
  enabled: false,
  leaseTtlMs: 2_000,
  thresholdPerSec: 20,
  actions: [],
  maxLeases: 10_000,
  maxGrants: 100_000,
  maxSliceFraction: 0.5,
  lowWaterFraction: 0.25,
  idleMs: 1_000,
  marginMs: 10,
};

/** Drift allowed between a holder's and an owner's clock rates: 1,000 ppm of a lease's length (10× the chaos harness's 100 ppm). */
export const LEASE_DRIFT = 1e-3;

function check(o: LeaseOptions, name: keyof LeaseOptions, min: number, max: number, integer: boolean): void {
  const v = o[name];
  if (typeof v !== 'number' || !(v >= min && v <= max) || (integer && !Number.isInteger(v))) {
    throw invalidArgument(`leases.${name}`, `must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${String(v)}`);
  }
}

/** The lease options with their defaults, checked: a bad one throws INVALID_ARGUMENT naming it. */
export function resolveLeaseOptions(input: Partial<LeaseOptions> | undefined): LeaseOptions {
  const o: LeaseOptions = { ...leaseDefaults, ...input };
  if (typeof o.enabled !== 'boolean') throw invalidArgument('leases.enabled', `must be true or false, got ${String(o.enabled)}`);
  check(o, 'leaseTtlMs', 10, 86_400_000, true);
  check(o, 'thresholdPerSec', 0, 1e6, false);
  if (!Array.isArray(o.actions) || !o.actions.every((a) => typeof a === 'string' && a.length > 0 && a.length <= 1024)) {
    throw invalidArgument('leases.actions', 'must be a list of action names');
  }
  check(o, 'maxLeases', 1, 1_000_000, true);
  check(o, 'maxGrants', 1, 10_000_000, true);
  check(o, 'maxSliceFraction', 0.01, 1, false);
  check(o, 'lowWaterFraction', 0, 0.9, false);
  check(o, 'idleMs', 10, 3_600_000, true);
  check(o, 'marginMs', 0, 60_000, false);
  if (o.marginMs >= o.leaseTtlMs / 2) throw invalidArgument('leases.marginMs', `must be under half of leases.leaseTtlMs (${o.leaseTtlMs}), got ${o.marginMs}`);
  return { ...o, actions: [...o.actions] };
}

/** How long a holder may use a slice granted for `expiresInMs`, from the moment it sent its ask: shortened for drift and the margin. */
export function usableMs(expiresInMs: number, marginMs: number): number {
  return expiresInMs - marginMs - expiresInMs * LEASE_DRIFT;
}

/**
 * A slice: what the holder wants (its rate over a lease's life), no more than its share of the
 * key's traffic among the holders, nor `maxFraction` of the remaining; at least 1 while 1 remains.
 */
export function sliceSize(want: number, remaining: number, share: number, maxFraction: number): number {
  if (!(remaining >= 1) || !(want >= 1)) return 0;
  const cap = Math.floor(Math.min(maxFraction, share) * remaining);
  return Math.max(1, Math.min(Math.floor(want), cap));
}
