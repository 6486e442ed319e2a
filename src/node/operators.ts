import { invalidArgument } from '../common/errors.js';
import type { LimiterStore } from '../limiter/store.js';
import type { Decision, RateLimitRequest } from '../limiter/types.js';
import { newResolvedParams } from '../limiter/validate.js';
import type { AdminRecord } from './node-events.js';
import type { Router } from './routing/router.js';
import { AdminOp } from './wire/frames.js';

/**
 * Operators' calls on a key — inspect, reset, set — carried out where the key's state is (its
 * owner, through the router) and replicated like every change; each is reported for the
 * logs with who asked.
 */
export async function operate(
  store: LimiterStore,
  router: Router,
  op: AdminRecord['op'],
  request: RateLimitRequest,
  remaining: number | undefined,
  by: string,
  report: (record: AdminRecord) => void,
): Promise<Decision> {
  if (op === 'set' && (!Number.isSafeInteger(remaining) || remaining! < 0)) throw invalidArgument('remaining', `must be a non-negative integer, got ${String(remaining)}`);
  // Resolved as a decision would be (policies, load factor), into an object of its own: it travels.
  const p = store.resolve({ ...request, cost: 0 }, newResolvedParams());
  const r = await router.admin(p, op === 'inspect' ? AdminOp.Inspect : AdminOp.Set, op === 'set' ? remaining! : -1);
  const result: Decision = { allowed: r.allowed, limit: r.limit, remaining: r.remaining, resetAtMs: r.resetAtMs, retryAfterMs: r.retryAfterMs };
  report({ op, action: p.action, key: p.key, remaining: op === 'set' ? remaining : undefined, by, result });
  return result;
}
