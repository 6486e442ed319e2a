/**
 * envoyproxy/ratelimit's per-limit stats (total_hits, over_limit, near_limit, within_limit,
 * shadow_mode), counted as that service counts them (src/limiter/base_limiter.go), by its
 * stats key: dashboards and alerts built on them keep their meaning. Bounded: past
 * maxKeys distinct keys, hits are counted under OVERFLOW_KEY.
 */

export interface EnvoyKeyStats {
  totalHits: number;
  overLimit: number;
  nearLimit: number;
  withinLimit: number;
  shadowMode: number;
}

export const envoyStatsDefaults = {
  /** Distinct stats keys kept (detailed_metric and value_to_metric make one per value). */
  maxKeys: 2_000,
  /** Longest stats key kept, in characters: a longer one (values of a caller's choosing) counts under the overflow key. */
  maxKeyLength: 1_024,
  /** Hits past this share of the limit count as near the limit (the peer's NEAR_LIMIT_RATIO). */
  nearLimitRatio: 0.8,
} as const;

export const OVERFLOW_KEY = '_overflow';

export class EnvoyStats {
  readonly keys = new Map<string, EnvoyKeyStats>();
  /** Answers turned OK by the service-wide shadow mode. */
  globalShadowMode = 0;
  /** Configuration loads: accepted, and refused (the one in force stayed). */
  configLoadSuccess = 0;
  configLoadError = 0;
  /** Calls refused for their input, or failed for want of a configuration or the cluster. */
  serviceErrors = 0;
  /** Descriptors of a domain the configuration does not have (the peer's domain_not_found, without the domain: callers choose it). */
  domainNotFound = 0;

  constructor(
    private readonly maxKeys: number = envoyStatsDefaults.maxKeys,
    private readonly nearLimitRatio: number = envoyStatsDefaults.nearLimitRatio,
  ) {}

  private of(key: string): EnvoyKeyStats {
    let s = this.keys.get(key);
    if (s === undefined) {
      if (key !== OVERFLOW_KEY && (this.keys.size >= this.maxKeys || key.length > envoyStatsDefaults.maxKeyLength)) return this.of(OVERFLOW_KEY);
      s = { totalHits: 0, overLimit: 0, nearLimit: 0, withinLimit: 0, shadowMode: 0 };
      this.keys.set(key, s);
    }
    return s;
  }

  /** One descriptor's hits on a limit of `limit`, its counter going from `before` to `after`. */
  record(key: string, limit: number, before: number, after: number, hits: number, shadowMode: boolean): void {
    const s = this.of(key);
    s.totalHits += hits;
    // The peer computes the threshold in float32.
    const near = Math.floor(Math.fround(Math.fround(limit) * Math.fround(this.nearLimitRatio)));
    if (after > limit) {
      if (before >= limit) s.overLimit += hits;
      else {
        s.overLimit += after - limit;
        s.nearLimit += limit - Math.max(near, before);
      }
      if (shadowMode) s.shadowMode += before >= limit ? hits : after - limit;
      return;
    }
    if (after > near) s.nearLimit += before >= near ? hits : after - near;
    s.withinLimit += hits;
  }
}
