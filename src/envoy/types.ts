/**
 * The shapes of envoyproxy/ratelimit's configuration as ringlimit holds it, and of what a
 * descriptor's lookup finds. Pure types: envoy-descriptors.ts loads them, envoy-lookup.ts
 * walks them, envoy-answer.ts answers with them.
 */

/** Envoy's RateLimitResponse.RateLimit.Unit, lower case as the YAML writes it. */
export type EnvoyUnit = 'second' | 'minute' | 'hour' | 'day' | 'week' | 'month' | 'year';

export const ENVOY_UNITS: readonly EnvoyUnit[] = ['second', 'minute', 'hour', 'day', 'week', 'month', 'year'];

/** A JSON value, as a rule's `metadata` holds it (Envoy's google.protobuf.Struct). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export interface EnvoyRateLimit {
  requestsPerUnit: number;
  /** undefined only when unlimited. */
  unit: EnvoyUnit | undefined;
  unlimited: boolean;
  /** '' when the rule has no name (as the peer sends it in current_limit). */
  name: string;
  /** Names of limits this one replaces when both apply to one request. */
  replaces: readonly string[];
}

/** A `rate_limit` of the file, with the flags of the descriptor that holds it. */
export interface EnvoyRule {
  limit: EnvoyRateLimit;
  shadowMode: boolean;
  quotaMode: boolean;
  detailedMetric: boolean;
  /** The peer's key for the rule: "domain.key_value.key", one level per dot. */
  fullKey: string;
}

/** One descriptor of the file: its children by composite key ("key" or "key_value"). */
export interface EnvoyDescriptorNode {
  readonly children: Map<string, EnvoyDescriptorNode>;
  /** The composite keys among the children that hold a '*', split on it once at load. */
  readonly wildcards: { key: string; parts: string[] }[];
  readonly rule: EnvoyRule | undefined;
  readonly valueToMetric: boolean;
  readonly shareThreshold: boolean;
  readonly metadata: JsonObject | undefined;
}

/** What a descriptor is limited by, found as envoyproxy/ratelimit's GetLimit finds it. */
export interface EnvoyMatch {
  limit: EnvoyRateLimit;
  shadowMode: boolean;
  quotaMode: boolean;
  /** The rule's own key ("domain.key_value.key"): its counters' action, whatever the values. */
  rule: string;
  /** The peer's stats key for this descriptor (detailed_metric, value_to_metric and share_threshold applied). */
  statKey: string;
  /**
   * Per entry, the wildcard pattern that stands for its value in the counter (share_threshold:
   * every value matching the pattern shares one counter), or '' for the entry's own value.
   * undefined when no entry shares.
   */
  sharedValues: string[] | undefined;
  metadata: JsonObject | undefined;
}

export interface EnvoyEntry {
  key: string;
  value: string;
}
