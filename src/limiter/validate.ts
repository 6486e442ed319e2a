import { invalidArgument } from '../common/errors.js';
import { calendarOf, type Calendar } from './calendar.js';
import { requestLimits } from './limits.js';
import { ALGORITHMS, AlgorithmId, type RateLimitRequest, type ResolvedParams, type ResolvedPolicy } from './types.js';

const DEFAULT_ACTION = 'default';


/** A string of at most n UTF-16 units has at most 3n UTF-8 bytes: measure only long strings. */
function utf8Exceeds(s: string, maxBytes: number): boolean {
  return s.length * 3 > maxBytes && Buffer.byteLength(s, 'utf8') > maxBytes;
}

function isPositiveSafeInteger(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n > 0;
}

export function parseAlgorithm(name: unknown): AlgorithmId {
  switch (name) {
    case undefined:
    case 'token-bucket':
      return AlgorithmId.TokenBucket;
    case 'gcra':
      return AlgorithmId.Gcra;
    case 'sliding-window':
      return AlgorithmId.SlidingWindow;
    case 'fixed-window':
      return AlgorithmId.FixedWindow;
    default:
      throw invalidArgument(
        'algorithm',
        `unknown algorithm ${JSON.stringify(name)}; expected one of token-bucket, gcra, sliding-window, fixed-window`,
      );
  }
}

/** The most a key can ever hold, so the largest cost one request may take: the bucket for token-bucket and GCRA, the limit for windows. */
export function mostUnitsHeld(algorithm: AlgorithmId, capacity: number, limit: number): number {
  return algorithm === AlgorithmId.TokenBucket || algorithm === AlgorithmId.Gcra ? capacity : limit;
}

export function newResolvedParams(): ResolvedParams {
  return { action: DEFAULT_ACTION, key: '', algorithm: AlgorithmId.TokenBucket, limit: 1, windowMs: 1, calendar: null, capacity: 1, cost: 1, global: false };
}

/**
 * A copy of `p` (with `cost` and `global` when given) that shares newResolvedParams()'s hidden class. On Node 20's V8
 * `{ ...p }` makes an object of another one, and the decision path, optimised for the one class, deoptimised wherever such a
 * copy reached it: every member at every ring change, the moment its decisions started to wait
 * for pulls (the join's and the leave's stall, decision 0008).
 */
export function copyResolvedParams(p: Readonly<ResolvedParams>, cost = p.cost, global = p.global): ResolvedParams {
  return { action: p.action, key: p.key, algorithm: p.algorithm, limit: p.limit, windowMs: p.windowMs, calendar: p.calendar, capacity: p.capacity, cost, global };
}

/**
 * Validates a request and writes the resolved numbers into `out` (reused on the hot
 * path, so no allocation). Throws a RateLimitError with code INVALID_ARGUMENT before
 * a state is touched. `said`: what the policies set for it (see policies.ts), which
 * wins over the request's own fields.
 */
export function resolveRequest(req: RateLimitRequest, out: ResolvedParams, said?: ResolvedPolicy, loadFactor = 1): ResolvedParams {
  if (typeof req !== 'object' || req === null) {
    throw invalidArgument('request', 'must be an object with key, limit and windowMs');
  }
  const key = req.key;
  const limit = said?.limit ?? req.limit;
  if (typeof key !== 'string' || key.length === 0) {
    throw invalidArgument('key', 'must be a non-empty string');
  }
  if (utf8Exceeds(key, requestLimits.maxKeyBytes)) {
    throw invalidArgument('key', `must be at most ${requestLimits.maxKeyBytes} bytes in UTF-8`);
  }
  let action = req.action;
  if (action === undefined) {
    action = DEFAULT_ACTION;
  } else if (typeof action !== 'string' || action.length === 0) {
    throw invalidArgument('action', 'must be a non-empty string when given');
  } else if (utf8Exceeds(action, requestLimits.maxActionBytes)) {
    throw invalidArgument('action', `must be at most ${requestLimits.maxActionBytes} bytes in UTF-8`);
  }
  if (!isPositiveSafeInteger(limit)) {
    throw invalidArgument('limit', limit === undefined ? 'missing: give a limit, or declare one in the policies for this action' : `must be a positive safe integer, got ${String(limit)}`);
  }
  let windowMs: unknown;
  let calendar: Calendar | null = null;
  if (said?.calendar !== undefined) {
    calendar = said.calendar;
  } else if (said?.windowMs !== undefined) {
    windowMs = said.windowMs;
  } else {
    windowMs = req.windowMs;
    calendar = requestCalendar(req);
  }
  if (calendar !== null) {
    windowMs = calendar.longestMs;
  } else if (
    typeof windowMs !== 'number' ||
    !(windowMs >= requestLimits.minWindowMs && windowMs <= requestLimits.maxWindowMs)
  ) {
    throw invalidArgument(
      'windowMs',
      windowMs === undefined
        ? 'missing: give windowMs or calendar, or declare a window in the policies for this action'
        : `must be a finite number from ${requestLimits.minWindowMs} to ${requestLimits.maxWindowMs} (24 h), got ${String(windowMs)}`,
    );
  }
  let weight = said?.weight ?? req.weight;
  if (weight === undefined) {
    weight = 1;
  } else if (typeof weight !== 'number' || !(weight > 0 && weight <= requestLimits.maxWeight)) {
    throw invalidArgument('weight', `must be a finite number > 0 and <= ${requestLimits.maxWeight}, got ${String(weight)}`);
  }
  let cost = req.cost;
  if (cost === undefined) {
    cost = 1;
  } else if (typeof cost !== 'number' || !Number.isSafeInteger(cost) || cost < 0) {
    throw invalidArgument('cost', `must be a non-negative integer, got ${String(cost)}`);
  }
  const group = req.group;
  if (group !== undefined && (typeof group !== 'string' || group.length > 256)) {
    throw invalidArgument('group', `must be a string of at most 256 characters when given, got ${String(group)}`);
  }
  const global = req.global;
  if (global !== undefined && typeof global !== 'boolean') {
    throw invalidArgument('global', `must be a boolean when given, got ${String(global)}`);
  }
  // A calendar window without an algorithm named is a fixed window ("1,000 a day"), not the default bucket.
  const algorithm = parseAlgorithm(said?.algorithm ?? req.algorithm ?? (calendar !== null ? 'fixed-window' : undefined));
  if (calendar !== null && algorithm !== AlgorithmId.SlidingWindow && algorithm !== AlgorithmId.FixedWindow) {
    throw invalidArgument(
      'calendar',
      `calendar windows need fixed-window or sliding-window: ${ALGORITHMS[algorithm]!} limits a rate, which has no window to align to the calendar`,
    );
  }
  const effectiveLimit = weight === 1 ? limit : Math.floor(limit * weight);
  checkEffective('limit', effectiveLimit, limit, weight);

  let capacity = effectiveLimit;
  const burst = said?.burst ?? req.burst;
  if (burst !== undefined) {
    if (!isPositiveSafeInteger(burst)) {
      throw invalidArgument('burst', `must be a positive safe integer when given, got ${String(burst)}`);
    }
    if (algorithm === AlgorithmId.SlidingWindow || algorithm === AlgorithmId.FixedWindow) {
      throw invalidArgument('burst', 'applies only to token-bucket and gcra; window algorithms allow exactly limit per window');
    }
    capacity = weight === 1 ? burst : Math.floor(burst * weight);
    checkEffective('burst', capacity, burst, weight);
  }
  const ceiling = mostUnitsHeld(algorithm, capacity, effectiveLimit);
  if (cost > ceiling) {
    throw invalidArgument(
      'cost',
      `cost ${cost} exceeds the most this key can ever hold (${ceiling} = ${
        ceiling === effectiveLimit ? 'limit' : 'burst'
      } × weight), so the request could never be allowed`,
    );
  }

  out.action = action;
  out.key = key;
  out.algorithm = algorithm;
  out.limit = effectiveLimit;
  out.windowMs = windowMs as number;
  out.calendar = calendar;
  out.capacity = capacity;
  out.cost = cost;
  if (loadFactor !== 1) scaleLimits(out, loadFactor);
  out.global = global === true;
  return out;
}

/**
 * Adaptive limits and fair shares: the limit and bucket scaled down by `factor`
 * (0 < factor < 1), never below 1 unit. A request that takes more than the scaled key can
 * hold is refused while the factor holds (never let through by raising the limit to fit it).
 */
/** The calendar a request asks for itself (null: none), with its timeZone; both checked against windowMs. */
function requestCalendar(req: RateLimitRequest): Calendar | null {
  const unit = req.calendar;
  if (unit === undefined) {
    if (req.timeZone !== undefined) throw invalidArgument('timeZone', 'applies only with calendar (a calendar window in a time zone)');
    return null;
  }
  if (req.windowMs !== undefined) throw invalidArgument('calendar', 'give either windowMs or calendar, not both');
  return calendarOf(unit, req.timeZone);
}

export function scaleLimits(p: ResolvedParams, factor: number): void {
  p.limit = Math.max(1, Math.floor(p.limit * factor));
  p.capacity = Math.max(1, Math.floor(p.capacity * factor));
}

function checkEffective(field: string, effective: number, base: number, weight: number): void {
  if (effective < 1) {
    throw invalidArgument('weight', `${field} ${base} × weight ${weight} is below 1: such a key could never be allowed anything`);
  }
  if (effective > requestLimits.maxEffectiveLimit) {
    throw invalidArgument(field, `${field} × weight must not exceed ${requestLimits.maxEffectiveLimit}`);
  }
}

/**
 * The remaining an operator's Set puts a key to: `remaining` when it is an integer from 0 to
 * the key's capacity (its limit for the window algorithms), its full allowance when
 * undefined (Reset); else INVALID_ARGUMENT naming `remaining`.
 */
export function checkedRemaining(p: Readonly<ResolvedParams>, remaining: number | undefined): number {
  const buckets = p.algorithm === AlgorithmId.TokenBucket || p.algorithm === AlgorithmId.Gcra;
  const ceiling = buckets ? p.capacity : p.limit;
  const target = remaining ?? ceiling;
  if (!Number.isSafeInteger(target) || target < 0 || target > ceiling) {
    throw invalidArgument('remaining', `must be an integer from 0 to ${ceiling} (the key's ${buckets ? 'bucket capacity' : 'limit'}), got ${String(remaining)}`);
  }
  return target;
}
