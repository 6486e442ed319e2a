import { invalidArgument } from '../common/errors.js';
import type { CalendarUnit } from './calendar.js';
import { requestLimits } from './limits.js';
import type { LimiterStore } from './store.js';
import type { Algorithm, Decision, ResolvedParams } from './types.js';
import { mostUnitsHeld, newResolvedParams, resolveRequest, scaleLimits } from './validate.js';

/** A policy's options, validated once when the handle is made. */
export interface PolicySpec {
  action?: string;
  limit: number;
  /** The window; or `calendar` (with `timeZone`) for calendar windows, as in a request. */
  windowMs?: number;
  calendar?: CalendarUnit;
  timeZone?: string;
  algorithm?: Algorithm;
  burst?: number;
  weight?: number;
  global?: boolean;
}

/** Per call: a weight other than the policy's, and the units this call takes (default 1; 0 peeks). */
export interface PolicyCallOptions {
  weight?: number;
  cost?: number;
}

/**
 * A policy's options validated once into a template; prepare() writes a call's key and
 * cost into a scratch copy — one request shape on the hot path, whatever shapes other
 * callers use, so the JIT keeps it monomorphic. A call with its own weight changes the
 * effective limit, so it is validated in full (the slower path). The scratch is reused:
 * whoever decides it must copy it before anything that outlives the call.
 */
export class PolicyTemplate {
  private readonly spec: PolicySpec;
  private readonly template: ResolvedParams;
  private readonly params: ResolvedParams;
  /** The largest cost a call may take: the most the key can ever hold. */
  private readonly maxCost: number;

  constructor(spec: PolicySpec) {
    if (typeof spec !== 'object' || spec === null) throw invalidArgument('policy', 'must be an object with action, limit and windowMs');
    this.spec = { ...spec };
    this.template = resolveRequest({ ...this.spec, key: 'policy', cost: 1 }, newResolvedParams());
    // The same hidden class as every other ResolvedParams, so the store's decision sees one shape.
    this.params = Object.assign(newResolvedParams(), this.template);
    this.maxCost = mostUnitsHeld(this.template.algorithm, this.template.capacity, this.template.limit);
  }

  /** The call's params; `loadFactor` < 1 scales the limits down (adaptive limits). */
  prepare(key: string, options: PolicyCallOptions | undefined, loadFactor: number): ResolvedParams {
    if (options !== undefined && options.weight !== undefined) {
      return resolveRequest({ ...this.spec, key, weight: options.weight, ...(options.cost !== undefined ? { cost: options.cost } : {}) }, this.params, undefined, loadFactor);
    }
    if (typeof key !== 'string' || key.length === 0 || (key.length * 3 > requestLimits.maxKeyBytes && Buffer.byteLength(key, 'utf8') > requestLimits.maxKeyBytes)) {
      throw invalidArgument('key', `must be a non-empty string of at most ${requestLimits.maxKeyBytes} bytes in UTF-8`);
    }
    const p = this.params;
    const t = this.template;
    // A call with its own weight may have left other numbers in the scratch: put the template's back.
    p.limit = t.limit;
    p.capacity = t.capacity;
    p.key = key;
    const cost = options === undefined || options.cost === undefined ? 1 : options.cost;
    if (cost !== 1 && !(Number.isSafeInteger(cost) && cost >= 0 && cost <= this.maxCost)) {
      throw invalidArgument('cost', `must be an integer from 0 to ${this.maxCost} (the most this key can hold), got ${String(cost)}`);
    }
    p.cost = cost;
    if (loadFactor !== 1) scaleLimits(p, loadFactor);
    return p;
  }
}

/**
 * A precompiled policy on a limiter: the fastest local path. Its options are its own:
 * the limiter's policy document does not apply to it.
 */
export class PolicyHandle {
  private readonly template: PolicyTemplate;

  constructor(
    private readonly store: LimiterStore,
    spec: PolicySpec,
  ) {
    this.template = new PolicyTemplate(spec);
  }

  allow(key: string, options?: PolicyCallOptions): Decision {
    return this.store.allowResolved(this.template.prepare(key, options, this.store.loadFactor));
  }

  /** The verdict alone: no allocation for a key already held. */
  isAllowed(key: string, options?: PolicyCallOptions): boolean {
    return this.store.isAllowedResolved(this.template.prepare(key, options, this.store.loadFactor));
  }
}
