import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { EnvoyDescriptors } from '../../src/envoy/descriptors.js';
import { envoyBucket } from '../../src/envoy/answer.js';
import { parseEnvoyConfigText } from '../../src/node/ops/envoy-config-file.js';

const FIXTURE = readFileSync(new URL('../limiter/fixtures/envoy-ratelimit.yaml', import.meta.url), 'utf8');
const load = (text: string): EnvoyDescriptors => parseEnvoyConfigText(text, 'test.yaml');
const e = (...pairs: [string, string][]) => pairs.map(([key, value]) => ({ key, value }));

describe('envoyproxy/ratelimit configurations, read and matched as that service does', () => {
  const config = load(FIXTURE);

  it('reads every domain of a multi-document file', () => {
    expect(config.domainNames).toEqual(['edge', 'mongo_cps']);
  });

  it('matches key and value first, else the key alone (one bucket per value), one level per entry', () => {
    expect(config.match('edge', e(['category', 'account']))).toMatchObject({ limit: { requestsPerUnit: 4, unit: 'minute', replaces: ['per_user'] }, rule: 'edge.category_account', statKey: 'edge.category_account' });
    expect(config.match('edge', e(['source_cluster', 'proxy'], ['destination_cluster', 'mock']))).toMatchObject({ limit: { requestsPerUnit: 1 }, rule: 'edge.source_cluster_proxy.destination_cluster_mock' });
    const a = config.match('edge', e(['remote_address', '10.0.0.1']));
    const b = config.match('edge', e(['remote_address', '10.0.0.2']));
    expect(a).toMatchObject({ limit: { requestsPerUnit: 10, unit: 'second' }, rule: 'edge.remote_address', statKey: 'edge.remote_address', sharedValues: undefined });
    expect(b?.rule).toBe(a?.rule);
    // One counter per value: the bucket holds every entry's key and value.
    expect(envoyBucket('edge', e(['remote_address', '10.0.0.1']), a?.sharedValues)).toBe('edge/remote_address=10.0.0.1');
    expect(envoyBucket('edge', e(['remote_address', '10.0.0.2']), b?.sharedValues)).toBe('edge/remote_address=10.0.0.2');
    // Unambiguous: '/' and '=' in keys and values are escaped.
    expect(envoyBucket('d', e(['a', 'x/b=y']), undefined)).not.toBe(envoyBucket('d', e(['a', 'x'], ['b', 'y']), undefined));
    expect(config.match('edge', e(['remote_address', '10.0.0.1'], ['path', '/x']))).toMatchObject({ limit: { requestsPerUnit: 3 }, rule: 'edge.remote_address.path' });
    expect(config.match('edge', e(['remote_address', '10.0.0.1'], ['path', '/healthz']))).toMatchObject({ limit: { unlimited: true, unit: undefined } });
    expect(config.match('edge', e(['remote_address', '10.0.0.1'], ['path', '/search']))).toMatchObject({ shadowMode: true, limit: { requestsPerUnit: 100, unit: 'hour' } });
    expect(config.match('edge', e(['tier', '200']))).toMatchObject({ limit: { requestsPerUnit: 0, unit: 'day' } }); // YAML's number 200 read as the string "200"
    expect(config.match('mongo_cps', e(['database', 'users']))).toMatchObject({ limit: { requestsPerUnit: 500 } });
  });

  it('applies no limit to an unknown domain or entry, or to a descriptor longer or shorter than the rule with the limit', () => {
    expect(config.match('nope', e(['category', 'account']))).toBeUndefined();
    expect(config.match('edge', e(['category', 'other']))).toBeUndefined();
    expect(config.match('edge', e(['source_cluster', 'proxy']))).toBeUndefined(); // no limit at that level
    expect(config.match('edge', e(['category', 'account'], ['extra', 'x']))).toBeUndefined();
    expect(config.match('edge', e(['source_cluster', 'proxy'], ['destination_cluster', 'other']))).toBeUndefined();
    expect(config.match('edge', [])).toBeUndefined();
  });

  it('refuses what envoyproxy/ratelimit refuses, with its message, the file and the place', () => {
    const bad: [string, RegExp][] = [
      ['domain: d\ndescriptors: [{ key: k, rate_limit: { unit: fortnight, requests_per_unit: 1 } }]', /^test\.yaml: invalid rate limit unit 'fortnight' \(at descriptors\[0\]\.rate_limit\.unit\)$/],
      ['domain: d\ndescriptors: [{ key: k, rate_limit: { unlimited: true, unit: second } }]', /^test\.yaml: should not specify rate limit unit when unlimited/],
      ['domain: d\ndescriptors: [{ key: k, rate_limit: { requests_per_unit: 1 } }]', /^test\.yaml: invalid rate limit unit ''/],
      ['domain: d\ndescriptors: [{ key: k }, { key: k }]', /^test\.yaml: duplicate descriptor composite key 'd\.k' \(at descriptors\[1\]\)$/],
      ['domain: d\ndescriptors: [{ value: v }]', /^test\.yaml: descriptor has empty key \(at descriptors\[0\]\)$/],
      ['domain: d\ndescriptors: [{ key: k, colour: red }]', /^test\.yaml: config error, unknown key 'colour' \(at descriptors\[0\]\.colour\)$/],
      ['domain: d\ndescriptors: [{ key: k, rate_limit: { unit: second, requests_per_unit: -1 } }]', /^test\.yaml: error loading config file: cannot read -1 as a uint32 \(at descriptors\[0\]\.rate_limit\.requests_per_unit\)$/],
      ['domain: d\ndescriptors: [{ key: k, rate_limit: { unit: second, requests_per_unit: 1, replaces: [{ name: "" }] } }]', /^test\.yaml: should not have an empty replaces entry/],
      ['descriptors: []', /^test\.yaml: config file cannot have empty domain/],
      ['domain: d\n---\ndomain: d', /^test\.yaml: duplicate domain 'd' in config file/],
      ['domain: d\ndescriptors: [{ key: k, value: v, share_threshold: true }]', /^test\.yaml: share_threshold can only be used with wildcard values \(containing '\*'\), but found key 'k_v'/],
      ['domain: d\ndescriptors: [{ key: k, rate_limit: { name: me, unit: second, replaces: [{ name: me }] } }]', /^test\.yaml: replaces should not contain name of same descriptor/],
    ];
    for (const [text, message] of bad) expect(() => load(text), text).toThrow(message);
  });
});
