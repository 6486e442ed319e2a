import { RateLimitError } from '../common/errors.js';
import { lookup } from './lookup.js';
import { ENVOY_UNITS, type EnvoyDescriptorNode, type EnvoyEntry, type EnvoyMatch, type EnvoyRateLimit, type EnvoyRule, type EnvoyUnit, type JsonObject, type JsonValue } from './types.js';

export type { EnvoyUnit, EnvoyMatch, EnvoyRateLimit, EnvoyEntry } from './types.js';

/**
 * envoyproxy/ratelimit's configuration (a `domain` and nested `descriptors` of key, optional
 * value and `rate_limit`), loaded and checked as that service loads it
 * (src/config/config_impl.go), with its error messages, each prefixed by the file's name and
 * followed by the place in it. A configuration written for envoyproxy/ratelimit works
 * unchanged. Pure: no I/O; envoy-config-file.ts reads the files, the node serves it.
 */

/** One parsed document and the file it came from (named in every error). */
export interface EnvoyConfigDocument {
  name: string;
  /** The document as YAML reads it: objects, or Maps where keys may be other than strings. */
  value: unknown;
}

export interface EnvoyLoadOptions {
  /** Documents of one domain are merged instead of refused (the peer's MERGE_DOMAIN_CONFIG). */
  mergeDomains?: boolean;
}

/** The keys envoyproxy/ratelimit accepts, at any level; it refuses a configuration with other keys. */
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
export const envoyConfigLimits = { maxDomains: 1_000, maxDescriptors: 100_000, maxDepth: 16, maxStringBytes: 1_024, maxMetadataBytes: 64 * 1024 } as const;

const MAX_UINT32 = 0xffff_ffff;

/** A configuration error: the file, envoyproxy/ratelimit's own message, and the place. */
class LoadError extends RateLimitError {
  constructor(file: string, message: string, place: string) {
    super('INVALID_ARGUMENT', place === '' ? `${file}: ${message}` : `${file}: ${message} (at ${place})`, file);
  }
}

/** A mapping's entries, whether YAML read it as a Map (keys of any type) or an object. */
function entriesOf(value: unknown): [unknown, unknown][] | undefined {
  if (value instanceof Map) return [...(value as Map<unknown, unknown>).entries()];
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return Object.entries(value);
  return undefined;
}

function describe(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
}

/** Every key, at every level, is a string the peer knows; lists hold only mappings (the peer's validateYamlKeys). */
function checkKeys(file: string, map: [unknown, unknown][], place: string): void {
  for (const [k, v] of map) {
    if (typeof k !== 'string') throw new LoadError(file, `config error, key is not of type string: ${describe(k)}`, place);
    const here = place === '' ? k : `${place}.${k}`;
    if (!VALID_KEYS.has(k)) throw new LoadError(file, `config error, unknown key '${k}'`, here);
    if (k === 'metadata') continue; // free-form: checked as metadata below
    if (Array.isArray(v)) {
      v.forEach((element, i) => {
        const inner = entriesOf(element);
        if (inner === undefined) throw new LoadError(file, `config error, yaml file contains list of type other than map: ${describe(element)}`, `${here}[${i}]`);
        checkKeys(file, inner, `${here}[${i}]`);
      });
      continue;
    }
    const inner = entriesOf(v);
    if (inner !== undefined) checkKeys(file, inner, here);
    else if (!(v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isInteger(v)))) throw new LoadError(file, 'error checking config', here);
  }
}

/** Reads one document's fields after checkKeys, with the checks of the peer's YAML decoding (types, uint32). */
class Fields {
  private readonly map: Map<string, unknown>;
  constructor(
    private readonly file: string,
    entries: [unknown, unknown][],
    readonly place: string,
  ) {
    this.map = new Map(entries as [string, unknown][]);
  }

  private at(name: string): string {
    return this.place === '' ? name : `${this.place}.${name}`;
  }

  private fail(name: string, why: string): LoadError {
    return new LoadError(this.file, `error loading config file: ${why}`, this.at(name));
  }

  /** A string field; YAML's numbers and booleans read as their text, as the peer's decoder reads them into a string. */
  text(name: string): string {
    const v = this.map.get(name);
    if (v === undefined || v === null) return '';
    const s = typeof v === 'number' || typeof v === 'boolean' ? String(v) : v;
    if (typeof s !== 'string') throw this.fail(name, 'must be a string');
    if (Buffer.byteLength(s) > envoyConfigLimits.maxStringBytes) throw this.fail(name, `longer than ${envoyConfigLimits.maxStringBytes} bytes`);
    return s;
  }

  flag(name: string): boolean {
    const v = this.map.get(name);
    if (v === undefined || v === null) return false;
    if (typeof v !== 'boolean') throw this.fail(name, `cannot read ${describe(v)} as a boolean`);
    return v;
  }

  uint32(name: string): number {
    const v = this.map.get(name);
    if (v === undefined || v === null) return 0;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_UINT32) throw this.fail(name, `cannot read ${describe(v)} as a uint32`);
    return v;
  }

  list(name: string): unknown[] {
    const v = this.map.get(name);
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw this.fail(name, 'must be a list');
    return v;
  }

  /** A nested mapping, or undefined when absent. */
  nested(name: string): Fields | undefined {
    const v = this.map.get(name);
    if (v === undefined || v === null) return undefined;
    const entries = entriesOf(v);
    if (entries === undefined) throw this.fail(name, 'must be a mapping');
    return new Fields(this.file, entries, this.at(name));
  }

  raw(name: string): unknown {
    return this.map.get(name);
  }
}

/** A metadata value as JSON (Envoy's Struct): maps with string keys, lists and scalars; bounded. */
function jsonOf(file: string, value: unknown, place: string): JsonValue {
  const fail = (why: string) => new LoadError(file, `error parsing metadata: ${why}`, place);
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw fail(`${String(value)} is not a number JSON holds`);
    return value;
  }
  if (Array.isArray(value)) return value.map((v, i) => jsonOf(file, v, `${place}[${i}]`));
  const entries = entriesOf(value);
  if (entries === undefined) throw fail(`${describe(value)} is not JSON`);
  const out: JsonObject = {};
  for (const [k, v] of entries) out[String(k)] = jsonOf(file, v, `${place}.${String(k)}`);
  return out;
}

function metadataOf(file: string, d: Fields): JsonObject | undefined {
  const raw = d.raw('metadata');
  if (raw === undefined || raw === null) return undefined;
  const place = d.place === '' ? 'metadata' : `${d.place}.metadata`;
  if (entriesOf(raw) === undefined) throw new LoadError(file, 'error parsing metadata: must be a mapping', place);
  const json = jsonOf(file, raw, place) as JsonObject;
  if (Object.keys(json).length === 0) return undefined;
  if (Buffer.byteLength(JSON.stringify(json)) > envoyConfigLimits.maxMetadataBytes) throw new LoadError(file, `error parsing metadata: larger than ${envoyConfigLimits.maxMetadataBytes} bytes`, place);
  return json;
}

interface MutableNode extends EnvoyDescriptorNode {
  readonly children: Map<string, MutableNode>;
}

const newNode = (rule: EnvoyRule | undefined, valueToMetric: boolean, shareThreshold: boolean, metadata: JsonObject | undefined): MutableNode => ({
  children: new Map(),
  wildcards: [],
  rule,
  valueToMetric,
  shareThreshold,
  metadata,
});

/** Domains of descriptors, loaded once; `match` answers each Envoy descriptor. */
export class EnvoyDescriptors {
  private readonly domains = new Map<string, MutableNode>();
  private count = 0;

  /**
   * Loads envoyproxy/ratelimit configurations: one document per file, as that service reads
   * them (ringlimit also takes several documents, `---`, in one file). Throws
   * INVALID_ARGUMENT with the file's name, the peer's message and the place.
   */
  constructor(documents: readonly EnvoyConfigDocument[], options: EnvoyLoadOptions = {}) {
    for (const doc of documents) this.load(doc, options.mergeDomains === true);
  }

  get domainNames(): string[] {
    return [...this.domains.keys()];
  }

  hasDomain(domain: string): boolean {
    return this.domains.has(domain);
  }

  /** The limit for one descriptor of `domain` (without Envoy's override), or undefined when none applies. */
  match(domain: string, entries: readonly EnvoyEntry[]): EnvoyMatch | undefined {
    const root = this.domains.get(domain);
    return root === undefined ? undefined : lookup(root, domain, entries);
  }

  private load({ name: file, value }: EnvoyConfigDocument, merge: boolean): void {
    const top = value === undefined || value === null ? [] : entriesOf(value);
    if (top === undefined) throw new LoadError(file, 'error loading config file: the document must be a mapping with domain and descriptors', '');
    checkKeys(file, top, '');
    const root = new Fields(file, top, '');
    const domain = root.text('domain');
    if (domain === '') throw new LoadError(file, 'config file cannot have empty domain', 'domain');
    let node = this.domains.get(domain);
    if (node !== undefined && !merge) throw new LoadError(file, `duplicate domain '${domain}' in config file`, 'domain');
    if (node === undefined) {
      if (this.domains.size >= envoyConfigLimits.maxDomains) throw new LoadError(file, `more than ${envoyConfigLimits.maxDomains} domains`, 'domain');
      node = newNode(undefined, false, false, undefined);
      this.domains.set(domain, node);
    }
    this.loadDescriptors(file, node, `${domain}.`, root.list('descriptors'), 'descriptors', 1);
  }

  private loadDescriptors(file: string, into: MutableNode, parentKey: string, list: unknown[], place: string, depth: number): void {
    if (depth > envoyConfigLimits.maxDepth) throw new LoadError(file, `descriptors nested deeper than ${envoyConfigLimits.maxDepth} levels`, place);
    list.forEach((element, i) => {
      const here = `${place}[${i}]`;
      const entries = entriesOf(element);
      if (entries === undefined) throw new LoadError(file, `config error, yaml file contains list of type other than map: ${describe(element)}`, here);
      if (++this.count > envoyConfigLimits.maxDescriptors) throw new LoadError(file, `more than ${envoyConfigLimits.maxDescriptors} descriptors`, here);
      const d = new Fields(file, entries, here);
      const key = d.text('key');
      if (key === '') throw new LoadError(file, 'descriptor has empty key', here);
      const value = d.text('value');
      const composite = value === '' ? key : `${key}_${value}`;
      const fullKey = parentKey + composite;
      if (into.children.has(composite)) throw new LoadError(file, `duplicate descriptor composite key '${fullKey}'`, here);
      const rule = this.ruleOf(file, d, fullKey);
      const shareThreshold = d.flag('share_threshold');
      const wildcard = composite.includes('*');
      if (shareThreshold && !wildcard) throw new LoadError(file, `share_threshold can only be used with wildcard values (containing '*'), but found key '${composite}'`, here);
      if (wildcard) into.wildcards.push({ key: composite, parts: composite.split('*') });
      const child = newNode(rule, d.flag('value_to_metric'), shareThreshold, metadataOf(file, d));
      this.loadDescriptors(file, child, `${fullKey}.`, d.list('descriptors'), `${here}.descriptors`, depth + 1);
      into.children.set(composite, child);
    });
  }

  private ruleOf(file: string, d: Fields, fullKey: string): EnvoyRule | undefined {
    const r = d.nested('rate_limit');
    if (r === undefined) return undefined;
    const unlimited = r.flag('unlimited');
    const unitText = r.text('unit');
    const unit = ENVOY_UNITS.find((u) => u === unitText.toLowerCase());
    if (unlimited && unit !== undefined) throw new LoadError(file, 'should not specify rate limit unit when unlimited', `${r.place}.unit`);
    if (!unlimited && unit === undefined) throw new LoadError(file, `invalid rate limit unit '${unitText}'`, `${r.place}.unit`);
    const name = r.text('name');
    const replaces = r.list('replaces').map((element, i) => {
      const here = `${r.place}.replaces[${i}]`;
      const entries = entriesOf(element);
      if (entries === undefined) throw new LoadError(file, `config error, yaml file contains list of type other than map: ${describe(element)}`, here);
      const replaced = new Fields(file, entries, here).text('name');
      if (replaced === '') throw new LoadError(file, 'should not have an empty replaces entry', here);
      if (replaced === name) throw new LoadError(file, 'replaces should not contain name of same descriptor', here);
      return replaced;
    });
    const limit: EnvoyRateLimit = { requestsPerUnit: r.uint32('requests_per_unit'), unit: unlimited ? undefined : unit, unlimited, name, replaces };
    return { limit, shadowMode: d.flag('shadow_mode'), quotaMode: d.flag('quota_mode'), detailedMetric: d.flag('detailed_metric'), fullKey };
  }
}

/** The unit Envoy's wire enum names (SECOND … YEAR), or undefined for UNKNOWN and others. */
export function unitOfWire(name: string): EnvoyUnit | undefined {
  return ENVOY_UNITS.find((u) => u === name.toLowerCase());
}
