import { RateLimitError } from '../common/errors.js';

/**
 * envoyproxy/ratelimit's configuration (a `domain` and nested `descriptors` of key, optional
 * value and `rate_limit`), read as that service reads it, and Envoy's descriptors (lists of
 * key/value entries) matched against it the same way: the entry's key and value, else its key
 * alone (one bucket per value); nested entries one level deeper; a limit applies only where
 * the request's last entry lands. A configuration written for envoyproxy/ratelimit works
 * unchanged (issue 15). Pure: no I/O; the node serves it.
 */

/** Envoy's RateLimitResponse.RateLimit.Unit, lower case as the YAML writes it. */
export type EnvoyUnit = 'second' | 'minute' | 'hour' | 'day' | 'week' | 'month' | 'year';

const UNITS: readonly EnvoyUnit[] = ['second', 'minute', 'hour', 'day', 'week', 'month', 'year'];

export interface EnvoyRateLimit {
  requestsPerUnit: number;
  /** undefined only when unlimited. */
  unit: EnvoyUnit | undefined;
  unlimited: boolean;
  name: string | undefined;
  /** Names of limits this one replaces when both apply to one request. */
  replaces: string[];
}

export interface EnvoyMatch {
  limit: EnvoyRateLimit;
  /** Decide and report, but never refuse (the descriptor's shadow_mode). */
  shadowMode: boolean;
  /** The configuration path matched, e.g. "rl/source_cluster_proxy/destination_cluster_mock": one action per rule. */
  rule: string;
  /** The bucket: every entry's key and value, so a key-only rule counts each value apart. */
  bucket: string;
}

interface DescriptorNode {
  limit: EnvoyRateLimit | undefined;
  shadowMode: boolean;
  path: string;
  children: Map<string, DescriptorNode>;
}

/** The keys envoyproxy/ratelimit accepts; it refuses a configuration with other keys. */
const VALID_KEYS = new Set([
  'domain',
  'key',
  'value',
  'descriptors',
  'rate_limit',
  'unit',
  'requests_per_unit',
  'unlimited',
  'shadow_mode',
  'quota_mode',
  'name',
  'replaces',
  'detailed_metric',
  'value_to_metric',
  'share_threshold',
  'metadata',
]);

/** Bounds on what a configuration may hold. */
export const envoyConfigLimits = { maxDomains: 1_000, maxDescriptors: 100_000, maxDepth: 16, maxStringBytes: 1_024 } as const;

const fail = (path: string, why: string): RateLimitError => new RateLimitError('INVALID_ARGUMENT', `${path}: ${why}`, path);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkKeys(value: Record<string, unknown>, path: string): void {
  for (const key of Object.keys(value)) if (!VALID_KEYS.has(key)) throw fail(`${path}.${key}`, 'unknown field (envoyproxy/ratelimit refuses it too)');
}

function text(value: unknown, path: string, required: boolean): string | undefined {
  if (value === undefined || value === null || value === '') {
    if (required) throw fail(path, 'must be a non-empty string');
    return undefined;
  }
  if (typeof value === 'number' || typeof value === 'boolean') value = String(value); // YAML reads `value: 200` as a number
  if (typeof value !== 'string' || Buffer.byteLength(value) > envoyConfigLimits.maxStringBytes) throw fail(path, `must be a string of at most ${envoyConfigLimits.maxStringBytes} bytes`);
  return value;
}

function flag(value: unknown, path: string): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value !== 'boolean') throw fail(path, 'must be true or false');
  return value;
}

function rateLimitOf(value: unknown, path: string): EnvoyRateLimit {
  if (!isRecord(value)) throw fail(path, 'must be an object with unit and requests_per_unit');
  checkKeys(value, path);
  const unlimited = flag(value['unlimited'], `${path}.unlimited`);
  const unitText = text(value['unit'], `${path}.unit`, false)?.toLowerCase();
  const unit = UNITS.find((u) => u === unitText);
  if (unitText !== undefined && unit === undefined) throw fail(`${path}.unit`, `invalid rate limit unit '${unitText}'; expected one of ${UNITS.join(', ')}`);
  if (unlimited && unit !== undefined) throw fail(`${path}.unit`, 'should not specify rate limit unit when unlimited');
  if (!unlimited && unit === undefined) throw fail(`${path}.unit`, `required unless unlimited: one of ${UNITS.join(', ')}`);
  const perUnit = value['requests_per_unit'] ?? 0;
  if (typeof perUnit !== 'number' || !Number.isInteger(perUnit) || perUnit < 0 || perUnit > 0xffff_ffff) throw fail(`${path}.requests_per_unit`, 'must be an integer from 0 to 4294967295');
  const replaces: string[] = [];
  const listed = value['replaces'] ?? [];
  if (!Array.isArray(listed)) throw fail(`${path}.replaces`, 'must be a list of { name }');
  listed.forEach((entry, i) => {
    if (!isRecord(entry)) throw fail(`${path}.replaces[${i}]`, 'must be { name }');
    checkKeys(entry, `${path}.replaces[${i}]`);
    replaces.push(text(entry['name'], `${path}.replaces[${i}].name`, true)!);
  });
  return { requestsPerUnit: perUnit, unit, unlimited, name: text(value['name'], `${path}.name`, false), replaces };
}

/** The counter a descriptor counts on: the domain and every entry's key and value (as envoyproxy/ratelimit keys its cache). */
export function bucketOf(domain: string, entries: readonly { key: string; value: string }[]): string {
  let bucket = domain;
  for (const { key, value } of entries) bucket += `_${key}_${value}`;
  return bucket;
}

/** Domains of descriptors, parsed once; `match` answers each Envoy descriptor. */
export class EnvoyDescriptors {
  private readonly domains = new Map<string, DescriptorNode>();

  /** Parses envoyproxy/ratelimit configurations (one object per file or YAML document). Throws INVALID_ARGUMENT naming the first mistake. */
  constructor(configurations: readonly unknown[]) {
    let count = 0;
    configurations.forEach((config, c) => {
      const at = configurations.length === 1 ? 'config' : `config[${c}]`;
      if (!isRecord(config)) throw fail(at, 'must be an object with domain and descriptors');
      checkKeys(config, at);
      const domain = text(config['domain'], `${at}.domain`, true)!;
      if (this.domains.has(domain)) throw fail(`${at}.domain`, `duplicate domain '${domain}'`);
      if (this.domains.size >= envoyConfigLimits.maxDomains) throw fail(`${at}.domain`, `at most ${envoyConfigLimits.maxDomains} domains`);
      const root: DescriptorNode = { limit: undefined, shadowMode: false, path: domain, children: new Map() };
      const load = (list: unknown, into: DescriptorNode, path: string, depth: number): void => {
        if (list === undefined || list === null) return;
        if (!Array.isArray(list)) throw fail(path, 'must be a list of descriptors');
        if (depth > envoyConfigLimits.maxDepth) throw fail(path, `nested deeper than ${envoyConfigLimits.maxDepth} levels`);
        list.forEach((d, i) => {
          const here = `${path}[${i}]`;
          if (!isRecord(d)) throw fail(here, 'must be an object with key (and value, rate_limit, descriptors)');
          checkKeys(d, here);
          if (++count > envoyConfigLimits.maxDescriptors) throw fail(here, `at most ${envoyConfigLimits.maxDescriptors} descriptors in all`);
          const key = text(d['key'], `${here}.key`, true)!;
          const value = text(d['value'], `${here}.value`, false);
          const composite = value === undefined ? key : `${key}_${value}`;
          if (into.children.has(composite)) throw fail(`${here}.key`, `duplicate descriptor composite key '${into.path}/${composite}'`);
          const node: DescriptorNode = {
            limit: d['rate_limit'] === undefined || d['rate_limit'] === null ? undefined : rateLimitOf(d['rate_limit'], `${here}.rate_limit`),
            shadowMode: flag(d['shadow_mode'], `${here}.shadow_mode`),
            path: `${into.path}/${composite}`,
            children: new Map(),
          };
          into.children.set(composite, node);
          load(d['descriptors'], node, `${here}.descriptors`, depth + 1);
        });
      };
      load(config['descriptors'], root, `${at}.descriptors`, 1);
      this.domains.set(domain, root);
    });
  }

  get domainNames(): string[] {
    return [...this.domains.keys()];
  }

  /**
   * The rule for one descriptor of `domain`, or undefined when none applies (an unknown
   * domain or entry, or a descriptor longer or shorter than the rule that has a limit).
   */
  match(domain: string, entries: readonly { key: string; value: string }[]): EnvoyMatch | undefined {
    let node = this.domains.get(domain);
    if (node === undefined || entries.length === 0) return undefined;
    for (let i = 0; i < entries.length; i++) {
      const { key, value } = entries[i]!;
      const next: DescriptorNode | undefined = node.children.get(`${key}_${value}`) ?? node.children.get(key);
      if (next === undefined) return undefined;
      if (i === entries.length - 1) return next.limit === undefined ? undefined : { limit: next.limit, shadowMode: next.shadowMode, rule: next.path, bucket: bucketOf(domain, entries) };
      node = next;
    }
    return undefined;
  }
}
