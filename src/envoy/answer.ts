import { RateLimitError } from '../common/errors.js';
import type { EnvoyDescriptors } from './descriptors.js';
import type { EnvoyEntry, EnvoyRateLimit, EnvoyUnit, JsonObject, JsonValue } from './types.js';
import type { EnvoyStats } from './stats.js';

/**
 * envoyproxy/ratelimit's answer to ShouldRateLimit (src/service/ratelimit.go and
 * src/limiter/base_limiter.go), as pure functions: `planEnvoyRequest` finds each
 * descriptor's limit and its counter; the caller counts the hits on those counters (every
 * hit, over the limit or not, as the peer's INCRBY does); `answerEnvoyRequest` builds the
 * statuses, the overall code, the headers and the dynamic metadata from the counts.
 */

/** What the service answers beyond the configuration (the peer's environment settings). */
export interface EnvoySettings {
  /** Never answer OVER_LIMIT overall; statuses still say which limits were over (the peer's SHADOW_MODE). */
  shadowMode: boolean;
  /** Every limit is a quota: OVER_LIMIT overall only when all quota descriptors are over (QUOTA_MODE). */
  quotaMode: boolean;
  /** RateLimit-* headers of the most restrictive limit, under these names (LIMIT_RESPONSE_HEADERS_ENABLED, LIMIT_*_HEADER); undefined: none. */
  responseHeaders: { limit: string; remaining: string; reset: string } | undefined;
  /** The request and the passed descriptors' metadata, as dynamic metadata (RESPONSE_DYNAMIC_METADATA). */
  dynamicMetadata: boolean;
}

export const envoySettingsDefaults: EnvoySettings = { shadowMode: false, quotaMode: false, responseHeaders: undefined, dynamicMetadata: false };

/** The peer's default header names, when headers are asked for without names. */
export const ENVOY_HEADER_NAMES = { limit: 'RateLimit-Limit', remaining: 'RateLimit-Remaining', reset: 'RateLimit-Reset' } as const;

/** An HTTP header name (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;

/** Fills defaults and checks the settings, naming the option (envoy.*) that is wrong. */
export function resolveEnvoySettings(input: Partial<EnvoySettings> | undefined): EnvoySettings {
  const s: EnvoySettings = { ...envoySettingsDefaults, ...input };
  for (const name of ['shadowMode', 'quotaMode', 'dynamicMetadata'] as const) {
    if (typeof s[name] !== 'boolean') throw new RateLimitError('INVALID_ARGUMENT', `envoy.${name}: must be true or false`, `envoy.${name}`);
  }
  if (s.responseHeaders !== undefined) {
    for (const name of ['limit', 'remaining', 'reset'] as const) {
      const header: unknown = s.responseHeaders[name];
      if (typeof header !== 'string' || !HEADER_NAME.test(header)) throw new RateLimitError('INVALID_ARGUMENT', `envoy.responseHeaders.${name}: must be an HTTP header name, got ${JSON.stringify(header)}`, `envoy.responseHeaders.${name}`);
    }
  }
  return s;
}

/** What a request may hold: Envoy sends a handful of descriptors of a few entries each. */
export const envoyRequestLimits = { maxDescriptors: 64, maxEntries: 16, maxDomainBytes: 1_024, maxEntryBytes: 4_096 } as const;

export const MAX_UINT32 = 0xffff_ffff;

/** A request as Envoy sends it, decoded. `limit.unit` is undefined for UNKNOWN or a unit not known. */
export interface EnvoyRequest {
  domain: string;
  descriptors: { entries: EnvoyEntry[]; limit: { requestsPerUnit: number; unit: EnvoyUnit | undefined } | undefined; hitsAddend: number | undefined }[];
  hitsAddend: number;
}

/** A counter to count a descriptor's hits on. */
export interface EnvoyCheck {
  limit: EnvoyRateLimit & { unit: EnvoyUnit };
  shadowMode: boolean;
  quotaMode: boolean;
  statKey: string;
  /** The counter: one per rule (or override unit) and unit… */
  action: string;
  /** …and per descriptor values (share_threshold values as their pattern). */
  bucket: string;
  hits: number;
  metadata: JsonObject | undefined;
}

export interface EnvoyPlan {
  request: EnvoyRequest;
  /** Per descriptor: the counter to count on, or undefined (no limit, replaced, or unlimited). */
  checks: (EnvoyCheck | undefined)[];
  unlimited: boolean[];
}

/** A counter's value before and after this request's hits. */
export interface EnvoyCount {
  before: number;
  after: number;
}

export interface EnvoyStatus {
  code: 'OK' | 'OVER_LIMIT';
  currentLimit?: { name: string; requestsPerUnit: number; unit: string };
  limitRemaining: number;
  durationUntilReset?: { seconds: number };
}

export interface EnvoyResponse {
  overallCode: 'OK' | 'OVER_LIMIT';
  statuses: EnvoyStatus[];
  responseHeadersToAdd: { key: string; value: string }[];
  dynamicMetadata: JsonObject | undefined;
}

const invalid = (field: string, message: string): RateLimitError => new RateLimitError('INVALID_ARGUMENT', message, field);

/** A counter's name part: readable, unambiguous (every '/' and '=' of a key or value is escaped). */
const part = (s: string): string => encodeURIComponent(s);

/** Counter key of a descriptor: the domain, and each entry's key and value (or the pattern it shares). */
export function envoyBucket(domain: string, entries: readonly EnvoyEntry[], sharedValues: readonly string[] | undefined): string {
  let bucket = part(domain);
  for (let i = 0; i < entries.length; i++) {
    const shared = sharedValues?.[i];
    bucket += `/${part(entries[i]!.key)}=${part(shared !== undefined && shared !== '' ? shared : entries[i]!.value)}`;
  }
  return bucket;
}

/** The peer's stats key of a limit Envoy's route sends: the domain and each entry's key (and _value). */
function overrideKey(domain: string, entries: readonly EnvoyEntry[]): string {
  return `${domain}.${entries.map((e) => (e.value === '' ? e.key : `${e.key}_${e.value}`)).join('.')}`;
}

/**
 * Checks the request and finds, per descriptor, the limit envoyproxy/ratelimit applies: the
 * file's, or the route's override for a domain the file has; `replaces` drops the limits
 * named by another matched limit; unlimited ones count nothing. Throws INVALID_ARGUMENT.
 */
export function planEnvoyRequest(config: EnvoyDescriptors, request: EnvoyRequest): EnvoyPlan {
  const { domain, descriptors } = request;
  if (domain === '') throw invalid('domain', 'rate limit domain must not be empty');
  if (Buffer.byteLength(domain) > envoyRequestLimits.maxDomainBytes) throw invalid('domain', `domain: at most ${envoyRequestLimits.maxDomainBytes} bytes`);
  if (descriptors.length === 0) throw invalid('descriptors', 'rate limit descriptor list must not be empty');
  if (descriptors.length > envoyRequestLimits.maxDescriptors) throw invalid('descriptors', `descriptors: at most ${envoyRequestLimits.maxDescriptors}`);
  const requestHits = Math.max(1, request.hitsAddend);
  const replacing = new Set<string>();
  const unlimited: boolean[] = [];
  const found = descriptors.map((d, i) => {
    if (d.entries.length === 0 || d.entries.length > envoyRequestLimits.maxEntries) throw invalid(`descriptors[${i}].entries`, `descriptors[${i}].entries: 1 to ${envoyRequestLimits.maxEntries} entries`);
    for (const e of d.entries) if (e.key.length + e.value.length > envoyRequestLimits.maxEntryBytes) throw invalid(`descriptors[${i}].entries`, `descriptors[${i}].entries: an entry of at most ${envoyRequestLimits.maxEntryBytes} characters`);
    const hits = d.hitsAddend ?? requestHits;
    unlimited.push(false);
    if (d.limit !== undefined) {
      // Envoy's route sends the limit itself: for a domain of the file, it stands instead of the file's, never in shadow mode.
      if (!config.hasDomain(domain)) return undefined;
      if (d.limit.unit === undefined) throw invalid(`descriptors[${i}].limit.unit`, `descriptors[${i}].limit.unit: SECOND, MINUTE, HOUR, DAY, WEEK, MONTH or YEAR`);
      const limit = { requestsPerUnit: d.limit.requestsPerUnit, unit: d.limit.unit, unlimited: false, name: '', replaces: [] };
      const check: EnvoyCheck = { limit, shadowMode: false, quotaMode: false, statKey: overrideKey(domain, d.entries), action: `override/${d.limit.unit}/${domain}`, bucket: envoyBucket(domain, d.entries, undefined), hits, metadata: undefined };
      return check;
    }
    const match = config.match(domain, d.entries);
    if (match === undefined) return undefined;
    for (const name of match.limit.replaces) replacing.add(name);
    if (match.limit.unlimited || match.limit.unit === undefined) {
      unlimited[i] = true;
      return undefined;
    }
    const limit = { ...match.limit, unit: match.limit.unit };
    const check: EnvoyCheck = { limit, shadowMode: match.shadowMode, quotaMode: match.quotaMode, statKey: match.statKey, action: `${limit.unit}/${match.rule}`, bucket: envoyBucket(domain, d.entries, match.sharedValues), hits, metadata: match.metadata };
    return check;
  });
  const checks = found.map((c) => (c !== undefined && c.limit.name !== '' && replacing.has(c.limit.name) ? undefined : c));
  return { request, checks, unlimited };
}

/** Whole seconds to the end of the window, on the peer's clock reading (whole seconds since the epoch). */
export type SecondsUntilReset = (unit: EnvoyUnit, nowMs: number) => number;

/** One descriptor's status from its counter, and the peer's stats for it (base_limiter.go GetResponseDescriptorStatus). */
function statusOf(check: EnvoyCheck, count: EnvoyCount, stats: EnvoyStats, untilReset: number): EnvoyStatus {
  const { limit } = check;
  const over = count.after > limit.requestsPerUnit;
  stats.record(check.statKey, limit.requestsPerUnit, count.before, count.after, check.hits, check.shadowMode);
  return {
    code: over && !check.shadowMode ? 'OVER_LIMIT' : 'OK',
    currentLimit: { name: limit.name, requestsPerUnit: limit.requestsPerUnit, unit: limit.unit.toUpperCase() },
    limitRemaining: over ? 0 : Math.min(MAX_UINT32, limit.requestsPerUnit - count.after),
    durationUntilReset: { seconds: untilReset },
  };
}

/**
 * The answer, from each counted descriptor's counts (undefined where plan.checks is): per
 * descriptor statuses, OVER_LIMIT overall when a rate limit is over or every quota is, the
 * most restrictive limit's headers, and the passed descriptors' metadata.
 */
export function answerEnvoyRequest(plan: EnvoyPlan, counts: readonly (EnvoyCount | undefined)[], settings: EnvoySettings, stats: EnvoyStats, nowMs: number, secondsUntilReset: SecondsUntilReset): EnvoyResponse {
  const statuses: EnvoyStatus[] = [];
  let tightest: EnvoyStatus | undefined;
  let tightestRemaining = MAX_UINT32;
  let failedRate = 0;
  let failedQuota = 0;
  let quotas = 0;
  const passed: number[] = [];
  plan.checks.forEach((check, i) => {
    const count = counts[i];
    const status: EnvoyStatus = check === undefined || count === undefined ? { code: 'OK', limitRemaining: 0 } : statusOf(check, count, stats, secondsUntilReset(check.limit.unit, nowMs));
    if (settings.responseHeaders !== undefined && status.currentLimit !== undefined && status.limitRemaining < tightestRemaining) {
      tightest = status;
      tightestRemaining = status.limitRemaining;
    }
    if (plan.unlimited[i] === true) {
      statuses.push({ code: 'OK', limitRemaining: MAX_UINT32 });
      return;
    }
    statuses.push(status);
    const quota = settings.quotaMode || check?.quotaMode === true;
    if (status.code === 'OVER_LIMIT') {
      if (quota) failedQuota++;
      else {
        failedRate++;
        tightest = status;
        tightestRemaining = 0;
      }
    } else passed.push(i);
    if (quota) quotas++;
  });
  let overallCode: 'OK' | 'OVER_LIMIT' = failedRate > 0 || (quotas > 0 && quotas === failedQuota) ? 'OVER_LIMIT' : 'OK';
  const headers = settings.responseHeaders;
  const responseHeadersToAdd =
    headers === undefined || tightest?.currentLimit === undefined
      ? []
      : [
          { key: headers.limit, value: String(tightest.currentLimit.requestsPerUnit) },
          { key: headers.remaining, value: String(tightest.limitRemaining) },
          { key: headers.reset, value: String(tightest.durationUntilReset?.seconds ?? 0) },
        ];
  if (overallCode === 'OVER_LIMIT' && settings.shadowMode) {
    overallCode = 'OK';
    stats.globalShadowMode++;
  }
  const dynamicMetadata = settings.dynamicMetadata ? metadataOf(plan, passed) : undefined;
  return { overallCode, statuses, responseHeadersToAdd, dynamicMetadata };
}

/** Merges `src` into `dest`: a key already there stays (the first descriptor's value wins), nested objects merge. */
function mergeInto(dest: JsonObject, src: JsonObject): void {
  for (const [k, v] of Object.entries(src)) {
    const existing = dest[k];
    if (existing === undefined) dest[k] = v;
    else if (isObject(existing) && isObject(v)) mergeInto(existing, v);
  }
}

const isObject = (v: JsonValue | undefined): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

function copy(o: JsonObject): JsonObject {
  return JSON.parse(JSON.stringify(o)) as JsonObject;
}

/** The peer's dynamic metadata: domain, descriptors (entries "key=value", limit, hitsAddend), hitsAddend, and the passed limits' metadata. */
function metadataOf(plan: EnvoyPlan, passed: readonly number[]): JsonObject {
  const { request } = plan;
  const descriptors: JsonValue[] = request.descriptors.map((d) => {
    const out: JsonObject = { entries: d.entries.map((e) => `${e.key}=${e.value}`) };
    if (d.limit !== undefined) out['limit'] = `requests_per_unit:${d.limit.requestsPerUnit} unit:${(d.limit.unit ?? 'unknown').toUpperCase()}`;
    if (d.hitsAddend !== undefined) out['hitsAddend'] = d.hitsAddend;
    return out;
  });
  const fields: JsonObject = { domain: request.domain, descriptors };
  if (request.hitsAddend !== 0) fields['hitsAddend'] = request.hitsAddend;
  const merged: JsonObject = {};
  for (const i of passed) {
    const metadata = plan.checks[i]?.metadata;
    if (metadata !== undefined) mergeInto(merged, copy(metadata));
  }
  if (Object.keys(merged).length > 0) fields['metadata'] = merged;
  return fields;
}

