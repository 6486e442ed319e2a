import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { EnvoyDescriptors } from '../../src/limiter/envoy-descriptors.js';

const FIXTURE = readFileSync(new URL('./fixtures/envoy-ratelimit.yaml', import.meta.url), 'utf8');
const load = (text: string): EnvoyDescriptors => new EnvoyDescriptors(parseAllDocuments(text).map((d) => d.toJS() as unknown));
const e = (...pairs: [string, string][]) => pairs.map(([key, value]) => ({ key, value }));

describe('envoyproxy/ratelimit configurations, read and matched as that service does', () => {
  const config = load(FIXTURE);

  it('reads every domain of a multi-document file', () => {
    expect(config.domainNames).toEqual(['edge', 'mongo_cps']);
  });

  it('matches key and value first, else the key alone (one bucket per value), one level per entry', () => {
    expect(config.match('edge', e(['category', 'account']))).toMatchObject({ limit: { requestsPerUnit: 4, unit: 'minute', replaces: ['per_user'] }, rule: 'edge/category_account', bucket: 'edge_category_account' });
    expect(config.match('edge', e(['source_cluster', 'proxy'], ['destination_cluster', 'mock']))).toMatchObject({ limit: { requestsPerUnit: 1 }, rule: 'edge/source_cluster_proxy/destination_cluster_mock' });
    const a = config.match('edge', e(['remote_address', '10.0.0.1']));
    const b = config.match('edge', e(['remote_address', '10.0.0.2']));
    expect(a).toMatchObject({ limit: { requestsPerUnit: 10, unit: 'second' }, rule: 'edge/remote_address', bucket: 'edge_remote_address_10.0.0.1' });
    expect(b?.rule).toBe(a?.rule);
    expect(b?.bucket).not.toBe(a?.bucket);
    expect(config.match('edge', e(['remote_address', '10.0.0.1'], ['path', '/x']))).toMatchObject({ limit: { requestsPerUnit: 3 }, rule: 'edge/remote_address/path' });
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

  it('refuses what envoyproxy/ratelimit refuses, naming the place', () => {
    const bad: [string, RegExp][] = [
      ['domain: d\ndescriptors: [{ key: k, rate_limit: { unit: fortnight, requests_per_unit: 1 } }]', /descriptors\[0\]\.rate_limit\.unit: invalid rate limit unit 'fortnight'/],
      ['domain: d\ndescriptors: [{ key: k, rate_limit: { unlimited: true, unit: second } }]', /should not specify rate limit unit when unlimited/],
      ['domain: d\ndescriptors: [{ key: k, rate_limit: { requests_per_unit: 1 } }]', /unit: required unless unlimited/],
      ['domain: d\ndescriptors: [{ key: k }, { key: k }]', /duplicate descriptor composite key 'd\/k'/],
      ['domain: d\ndescriptors: [{ value: v }]', /descriptors\[0\]\.key: must be a non-empty string/],
      ['domain: d\ndescriptors: [{ key: k, colour: red }]', /descriptors\[0\]\.colour: unknown field/],
      ['domain: d\ndescriptors: [{ key: k, rate_limit: { unit: second, requests_per_unit: -1 } }]', /requests_per_unit: must be an integer/],
      ['domain: d\ndescriptors: [{ key: k, rate_limit: { unit: second, requests_per_unit: 1, replaces: [{ name: "" }] } }]', /replaces\[0\]\.name: must be a non-empty string/],
      ['descriptors: []', /config\.domain: must be a non-empty string/],
      ['domain: d\n---\ndomain: d', /duplicate domain 'd'/],
    ];
    for (const [text, message] of bad) expect(() => load(text), text).toThrow(message);
  });
});
