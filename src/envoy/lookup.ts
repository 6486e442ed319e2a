import type { EnvoyDescriptorNode, EnvoyEntry, EnvoyMatch, EnvoyRule } from './types.js';

/**
 * Whether `value` matches a pattern split on its '*'s: each '*' matches zero or more
 * characters, the segments in order (envoyproxy/ratelimit's wildcardMatch).
 */
export function wildcardMatch(parts: readonly string[], value: string): boolean {
  if (parts.length === 1) return parts[0] === value;
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  if (!value.startsWith(first) || !value.endsWith(last)) return false;
  let fixed = 0;
  for (const p of parts) fixed += p.length;
  if (value.length < fixed) return false;
  let remaining = value.slice(first.length, value.length - last.length);
  for (let i = 1; i < parts.length - 1; i++) {
    const at = remaining.indexOf(parts[i]!);
    if (at < 0) return false;
    remaining = remaining.slice(at + parts[i]!.length);
  }
  return true;
}

const trimPrefix = (s: string, prefix: string): string => (s.startsWith(prefix) ? s.slice(prefix.length) : s);

/**
 * The limit for one descriptor of `domain`, found as envoyproxy/ratelimit's GetLimit finds it
 * (src/config/config_impl.go): per entry, its `key_value`, else the first wildcard pattern of
 * that level it matches, else its `key` alone; one nesting level per entry; a limit applies
 * only where the descriptor's last entry lands. Its stats key follows detailed_metric,
 * value_to_metric and share_threshold as that service builds it.
 */
export function lookup(root: EnvoyDescriptorNode, domain: string, entries: readonly EnvoyEntry[]): EnvoyMatch | undefined {
  let children = root.children;
  let previous = root;
  let found: EnvoyRule | undefined;
  let foundNode: EnvoyDescriptorNode | undefined;
  let detailedKey = domain;
  let valueToMetricKey = domain;
  let shared: Map<number, string> | undefined;

  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    const composite = `${entry.key}_${entry.value}`;
    detailedKey += `.${composite}`;
    let next = children.get(composite);
    let wildcardKey = '';
    if (next === undefined) {
      for (const w of previous.wildcards) {
        if (wildcardMatch(w.parts, composite)) {
          next = children.get(w.key);
          wildcardKey = w.key;
          break;
        }
      }
    }
    const matchedUsingValue = next !== undefined;
    if (next === undefined) next = children.get(entry.key);

    if (wildcardKey !== '' && next !== undefined && next.shareThreshold) {
      shared ??= new Map();
      shared.set(i, trimPrefix(wildcardKey, `${entry.key}_`));
    }

    valueToMetricKey += '.';
    if (next !== undefined) {
      let value = '';
      if (wildcardKey !== '') value = shared?.get(i) ?? (next.valueToMetric ? entry.value : trimPrefix(wildcardKey, `${entry.key}_`));
      else if (matchedUsingValue || next.valueToMetric) value = entry.value;
      valueToMetricKey += value === '' ? entry.key : `${entry.key}_${value}`;
    } else valueToMetricKey += entry.key;

    if (next?.rule !== undefined && i === entries.length - 1) {
      found = next.rule;
      foundNode = next;
    }
    if (next === undefined || next.children.size === 0) break;
    children = next.children;
    previous = next;
  }
  if (found === undefined || foundNode === undefined) return undefined;

  const sharedValues = shared === undefined ? undefined : entries.map((_, i) => shared.get(i) ?? '');
  let statKey = found.fullKey;
  if (found.detailedMetric) {
    if (sharedValues !== undefined) {
      statKey = domain;
      entries.forEach((e, i) => {
        const pattern = sharedValues[i]!;
        statKey += pattern !== '' ? `.${e.key}_${pattern}` : e.value === '' ? `.${e.key}` : `.${e.key}_${e.value}`;
      });
    } else statKey = detailedKey;
  } else if (valueToMetricKey !== statKey) statKey = valueToMetricKey;

  return { limit: found.limit, shadowMode: found.shadowMode, quotaMode: found.quotaMode, rule: found.fullKey, statKey, sharedValues, metadata: foundNode.metadata };
}
