import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { d, request, roomInWindow, serveRefusing, startEnvoyServe, type EnvoyServe, type Status, type StructValue } from './envoy-serve.js';

/**
 * envoyproxy/ratelimit's test/config/config_test.go, ported: every test, with that project's
 * own YAML files (fixtures/envoyproxy-ratelimit/config, copied unchanged), run against a real
 * `serve` over gRPC. Where that test reads GetLimit's result, this one asks ShouldRateLimit
 * and reads the status (current_limit, limit_remaining); where it reads a stats counter, this
 * one reads the same key on /metrics (ringlimit_envoy_limit_hits_total{key}). Each test
 * loads its configuration by rewriting the served directory (the node re-reads it).
 */

const FIXTURES = new URL('./fixtures/envoyproxy-ratelimit/config/', import.meta.url);
const fixture = (name: string): string => readFileSync(new URL(name, FIXTURES), 'utf8');
const UNLIMITED = 4_294_967_295;

type Entry = [string, string];

let serve: EnvoyServe;

beforeAll(async () => {
  serve = await startEnvoyServe({ 'start.yaml': 'domain: start\n' }, ['--envoy-dynamic-metadata']);
}, 30_000);
afterAll(async () => {
  await serve?.stop();
});

async function load(files: Record<string, string>): Promise<void> {
  const error = await serve.load(files);
  expect(error, 'the configuration loads').toBeUndefined();
}

/**
 * GetLimit over the wire: one hit on a descriptor of `entries` in `domain`, and its status.
 * With `statKey`, the hit must be counted under that stats key (total_hits + 1).
 */
async function getLimit(domain: string, entries: Entry[], statKey?: string, hits = 1): Promise<Status> {
  const before = statKey === undefined ? 0 : await serve.stat(statKey, 'total_hits');
  const status = (await serve.answer(request(domain, [d(...entries)], hits))).statuses![0]!;
  if (statKey !== undefined) expect((await serve.stat(statKey, 'total_hits')) - before, `hits counted under ${statKey}`).toBe(hits);
  return status;
}

/** GetLimit returned nil: OK, no current limit, nothing remaining. */
function expectNone(status: Status, what = ''): void {
  expect(status.currentLimit, what).toBeUndefined();
  expect(status.code, what).toBe('OK');
  expect(status.limitRemaining ?? 0, what).toBe(0);
}

function expectLimit(status: Status, requestsPerUnit: number, unit: string, name = ''): void {
  expect(status.currentLimit?.requestsPerUnit).toBe(requestsPerUnit);
  expect(status.currentLimit?.unit).toBe(unit);
  expect(status.currentLimit?.name ?? '').toBe(name);
}

describe('envoyproxy/ratelimit test/config/config_test.go, against serve', () => {
  it('TestBasicConfig', async () => {
    await load({ 'basic_config.yaml': fixture('basic_config.yaml') });
    const notFound = await serve.metric('ringlimit_envoy_domain_not_found_total');
    expectNone(await getLimit('foo_domain', [['key1', 'value1']]));
    expect((await serve.metric('ringlimit_envoy_domain_not_found_total')) - notFound).toBe(1);
    // GetLimit(…, &RateLimitDescriptor{}): a descriptor without entries is refused here on purpose (docs/envoy.md).
    expect((await serve.ask(request('test-domain', [d()]))).error?.code).toBe(3);
    expectNone(await getLimit('test-domain', [['key1', 'something']]));
    expectNone(await getLimit('test-domain', [['key1', 'value1']]));
    expectNone(await getLimit('test-domain', [['key2', 'value2'], ['subkey', 'subvalue']]));
    expectNone(await getLimit('test-domain', [['key5', 'value5'], ['subkey5', 'subvalue']]));
    expectLimit(await getLimit('test-domain', [['key1', 'value1'], ['subkey1', 'something']], 'test-domain.key1_value1.subkey1'), 5, 'SECOND');
    expectLimit(await getLimit('test-domain', [['key1', 'value1'], ['subkey1', 'subvalue1']], 'test-domain.key1_value1.subkey1_subvalue1'), 10, 'SECOND');
    expectLimit(await getLimit('test-domain', [['key2', 'something']], 'test-domain.key2'), 20, 'MINUTE');
    expectLimit(await getLimit('test-domain', [['key2', 'value2']], 'test-domain.key2_value2'), 30, 'MINUTE');
    expectNone(await getLimit('test-domain', [['key2', 'value3']]));
    expectLimit(await getLimit('test-domain', [['key3', 'foo']], 'test-domain.key3'), 1, 'HOUR');
    expectLimit(await getLimit('test-domain', [['key4', 'foo']], 'test-domain.key4'), 1, 'DAY', 'key4_rate_limit');
    const unlimited = await getLimit('test-domain', [['key6', 'foo']]);
    expect(unlimited).toMatchObject({ code: 'OK', limitRemaining: UNLIMITED });
    expect(unlimited.currentLimit).toBeUndefined();
    // detailed_metric: the value is in the stats key.
    expectLimit(await getLimit('test-domain', [['key7', 'unspecified_value']], 'test-domain.key7_unspecified_value'), 70, 'MINUTE');
    expectLimit(await getLimit('test-domain', [['key7', 'another_value']], 'test-domain.key7_another_value'), 70, 'MINUTE');
    // The over_limit, near_limit and within_limit stats of a key, as the peer counts them: 5 per second, 7 hits.
    const key = 'test-domain.key1_value1.subkey1';
    const [over, near, within] = [await serve.stat(key, 'over_limit'), await serve.stat(key, 'near_limit'), await serve.stat(key, 'within_limit')];
    const burst = await getLimit('test-domain', [['key1', 'value1'], ['subkey1', `burst-${Date.now()}`]], key, 7);
    expect(burst).toMatchObject({ code: 'OVER_LIMIT', limitRemaining: 0 });
    expect((await serve.stat(key, 'over_limit')) - over).toBe(2); // 7 − 5
    expect((await serve.stat(key, 'near_limit')) - near).toBe(1); // from floor(5 × 0.8) = 4 to 5
    expect((await serve.stat(key, 'within_limit')) - within).toBe(0);
  });

  it('TestConfigLimitOverride', async () => {
    await load({ 'basic_config.yaml': fixture('basic_config.yaml') });
    const override = (entries: Entry[], requestsPerUnit: number, unit: string) => ({ ...d(...entries), limit: { requestsPerUnit, unit } });
    // No matching domain: the override is not applied.
    expectNone((await serve.answer(request('foo_domain', [override([['key1', 'value1']], 10, 'DAY')]))).statuses![0]!);
    const key = 'test-domain.key1_value1.subkey1_something';
    const before = await serve.stat(key, 'total_hits');
    const first = (await serve.answer(request('test-domain', [override([['key1', 'value1'], ['subkey1', 'something']], 10, 'DAY')]))).statuses![0]!;
    expectLimit(first, 10, 'DAY');
    expect((await serve.stat(key, 'total_hits')) - before).toBe(1);
    // A change in the override's value keeps the stats.
    const second = (await serve.answer(request('test-domain', [override([['key1', 'value1'], ['subkey1', 'something']], 42, 'HOUR')]))).statuses![0]!;
    expectLimit(second, 42, 'HOUR');
    expect((await serve.stat(key, 'total_hits')) - before).toBe(2);
    // Another value: another key.
    const otherKey = 'test-domain.key1_value1.subkey1_something_else';
    const otherBefore = await serve.stat(otherKey, 'total_hits');
    expectLimit((await serve.answer(request('test-domain', [override([['key1', 'value1'], ['subkey1', 'something_else']], 42, 'HOUR')]))).statuses![0]!, 42, 'HOUR');
    expect((await serve.stat(otherKey, 'total_hits')) - otherBefore).toBe(1);
  });

  // The load errors: each refused on reload (the configuration in force stays) with the peer's message, the file named.
  const refusals: [string, Record<string, string>, string][] = [
    ['TestEmptyDomain', { 'empty_domain.yaml': fixture('empty_domain.yaml') }, 'empty_domain.yaml: config file cannot have empty domain'],
    ['TestDuplicateDomain', { 'basic_config.yaml': fixture('basic_config.yaml'), 'duplicate_domain.yaml': fixture('duplicate_domain.yaml') }, "duplicate_domain.yaml: duplicate domain 'test-domain' in config file"],
    ['TestEmptyKey', { 'empty_key.yaml': fixture('empty_key.yaml') }, 'empty_key.yaml: descriptor has empty key'],
    ['TestDuplicateKey', { 'duplicate_key.yaml': fixture('duplicate_key.yaml') }, "duplicate_key.yaml: duplicate descriptor composite key 'test-domain.key1_value1'"],
    ['TestBadLimitUnit', { 'bad_limit_unit.yaml': fixture('bad_limit_unit.yaml') }, "bad_limit_unit.yaml: invalid rate limit unit 'foo'"],
    ['TestReplacesSelf', { 'replaces_self.yaml': fixture('replaces_self.yaml') }, 'replaces_self.yaml: replaces should not contain name of same descriptor'],
    ['TestReplacesEmpty', { 'replaces_empty.yaml': fixture('replaces_empty.yaml') }, 'replaces_empty.yaml: should not have an empty replaces entry'],
    // The YAML parser's own words differ from Go's (yaml: line 2: found unexpected end of stream).
    ['TestBadYaml', { 'bad_yaml.yaml': fixture('bad_yaml.yaml') }, 'bad_yaml.yaml: error loading config file: line 2: '],
    ['TestMisspelledKey', { 'misspelled_key.yaml': fixture('misspelled_key.yaml') }, "misspelled_key.yaml: config error, unknown key 'ratelimit'"],
    ['TestMisspelledKey (2)', { 'misspelled_key2.yaml': fixture('misspelled_key2.yaml') }, "misspelled_key2.yaml: config error, unknown key 'requestsperunit'"],
    ['TestNonStringKey', { 'non_string_key.yaml': fixture('non_string_key.yaml') }, 'non_string_key.yaml: config error, key is not of type string: 0.25'],
    ['TestNonMapList', { 'non_map_list.yaml': fixture('non_map_list.yaml') }, 'non_map_list.yaml: config error, yaml file contains list of type other than map: a'],
    ['TestUnlimitedWithRateLimitUnit', { 'unlimited_with_unit.yaml': fixture('unlimited_with_unit.yaml') }, 'unlimited_with_unit.yaml: should not specify rate limit unit when unlimited'],
  ];
  for (const [name, files, message] of refusals) {
    it(name, async () => {
      await load({ 'known.yaml': 'domain: known\ndescriptors: [{ key: k, rate_limit: { unit: minute, requests_per_unit: 3 } }]\n' });
      const error = await serve.load(files);
      expect(error).toContain(`${serve.configDir}/${message}`);
      // The configuration in force stays.
      expectLimit(await getLimit('known', [['k', 'v']]), 3, 'MINUTE');
      // And serve refuses to start with it, saying the same.
      const dir = serve.configDir;
      const started = await serveRefusing(Object.keys(files).map((f) => `${dir}/${f}`));
      expect(started.code).toBe(1);
      expect(started.stderr).toContain(message);
    });
  }

  it('TestShadowModeConfig', async () => {
    await load({ 'shadowmode_config.yaml': fixture('shadowmode_config.yaml') });
    // Shadow mode shows when over the limit: answered OK (and counted as shadow_mode) instead of OVER_LIMIT.
    const over = async (entries: Entry[], statKey: string, limit: number): Promise<{ status: Status; shadowed: number }> => {
      const shadowBefore = await serve.stat(statKey, 'shadow_mode');
      const status = await getLimit('test-domain', entries, statKey, limit + 1);
      return { status, shadowed: (await serve.stat(statKey, 'shadow_mode')) - shadowBefore };
    };
    const a = await over([['key1', 'value1'], ['subkey1', `s-${Date.now()}`]], 'test-domain.key1_value1.subkey1', 5);
    expectLimit(a.status, 5, 'SECOND');
    expect([a.status.code, a.shadowed]).toEqual(['OVER_LIMIT', 0]);
    const b = await over([['key1', 'value1'], ['subkey1', 'subvalue1']], 'test-domain.key1_value1.subkey1_subvalue1', 10);
    expectLimit(b.status, 10, 'SECOND');
    expect([b.status.code, b.status.limitRemaining ?? 0, b.shadowed]).toEqual(['OK', 0, 1]);
    const c = await over([['key2', `s-${Date.now()}`]], 'test-domain.key2', 20);
    expectLimit(c.status, 20, 'MINUTE');
    expect([c.status.code, c.shadowed]).toEqual(['OK', 1]);
    const e = await over([['key2', 'value2']], 'test-domain.key2_value2', 30);
    expectLimit(e.status, 30, 'MINUTE');
    expect([e.status.code, e.shadowed]).toEqual(['OVER_LIMIT', 0]);
  });

  it('TestWildcardConfig', async () => {
    await load({ 'wildcard.yaml': fixture('wildcard.yaml') });
    // Baseline: a key without a value matches every value, under the key alone.
    expectLimit(await getLimit('test-domain', [['noVal', 'foo1']], 'test-domain.noVal'), 20, 'MINUTE');
    expectLimit(await getLimit('test-domain', [['noVal', 'foo2']], 'test-domain.noVal'), 20, 'MINUTE');
    // Wildcard values: one limit, stats under the pattern.
    expectLimit(await getLimit('test-domain', [['wild', 'foo1']], 'test-domain.wild_foo*'), 20, 'MINUTE');
    expectLimit(await getLimit('test-domain', [['wild', 'foo2']], 'test-domain.wild_foo*'), 20, 'MINUTE');
    expectLimit(await getLimit('test-domain', [['nestedWild', 'val1'], ['wild', 'goo2']], 'test-domain.nestedWild_val1.wild_goo*'), 20, 'MINUTE');
    // Without share_threshold each value keeps a counter of its own.
    await roomInWindow(60_000, 5_000);
    const own = `foo-${Date.now()}`;
    expect((await getLimit('test-domain', [['wild', own]])).limitRemaining).toBe(19);
    expect((await getLimit('test-domain', [['wild', `${own}-other`]])).limitRemaining).toBe(19);
    expectNone(await getLimit('test-domain', [['wild', 'bar']]));
    expectNone(await getLimit('test-domain', [['noWild', 'foo1']])); // no eager match
    expectLimit(await getLimit('test-domain', [['midWild', 'barab']], 'test-domain.midWild_bar*b'), 20, 'MINUTE');
    expectLimit(await getLimit('test-domain', [['midWild', 'bar123b']], 'test-domain.midWild_bar*b'), 20, 'MINUTE');
    expectLimit(await getLimit('test-domain', [['midWild', 'barb']]), 20, 'MINUTE'); // * matches the empty string
    expectNone(await getLimit('test-domain', [['midWild', 'bara']]));
    expectNone(await getLimit('test-domain', [['midWild', 'xbarb']]));
    expectLimit(await getLimit('test-domain', [['multiWild', 'foo123bar456baz']], 'test-domain.multiWild_foo*bar*baz'), 10, 'MINUTE');
    expectLimit(await getLimit('test-domain', [['multiWild', 'foobarbaz']], 'test-domain.multiWild_foo*bar*baz'), 10, 'MINUTE');
    expectNone(await getLimit('test-domain', [['multiWild', 'foo123baz']]));
    expectNone(await getLimit('test-domain', [['multiWild', 'bar456baz']]));
  });

  // TestDetailedMetric's configurations, in YAML.
  const nested = (detailedTop: boolean, detailedLeaf: boolean) =>
    `domain: nested\ndescriptors:\n  - key: key-1\n    rate_limit: { requests_per_unit: 100, unit: minute }\n    detailed_metric: ${detailedTop}\n    descriptors:\n      - key: key-2\n        rate_limit: { requests_per_unit: 5, unit: minute }\n        detailed_metric: ${detailedLeaf}\n`;
  const realistic = `domain: nested
descriptors:
  - key: key_1
    rate_limit: { requests_per_unit: 500, unit: minute }
    detailed_metric: true
  - key: key_1
    value: some-value-for-key-1
    rate_limit: { requests_per_unit: 500, unit: minute }
  - key: key_2
    rate_limit: { requests_per_unit: 5000, unit: minute }
    detailed_metric: true
    descriptors:
      - { key: key_3, detailed_metric: true }
      - { key: key_3, value: requested-key3-value, rate_limit: { requests_per_unit: 5, unit: minute }, detailed_metric: true }
  - key: key_2
    value: specific-id
    rate_limit: { requests_per_unit: 50000, unit: minute }
    detailed_metric: true
    descriptors:
      - { key: key_3, detailed_metric: true }
      - { key: key_3, value: requested-key3-value, rate_limit: { requests_per_unit: 100, unit: minute }, detailed_metric: true }
`;
  const detailedCases: [string, string, Entry[], string][] = [
    ['nested with no values but request only top-level key', nested(true, false), [['key-1', 'value-1']], 'nested.key-1_value-1'],
    ['nested with no values but request only top-level key with no detailed metric', nested(false, false), [['key-1', 'value-1']], 'nested.key-1'],
    ['nested with no values and request fully nested descriptors', nested(true, true), [['key-1', 'value-1'], ['key-2', 'value-2']], 'nested.key-1_value-1.key-2_value-2'],
    ['nested with no values and request fully nested descriptors with no detailed metric', nested(false, false), [['key-1', 'value-1'], ['key-2', 'value-2']], 'nested.key-1.key-2'],
    ['test nested descriptors with simple request', realistic, [['key_1', 'value-for-key-1']], 'nested.key_1_value-for-key-1'],
    ['test nested only second descriptor request not nested', realistic, [['key_2', 'key-2-value']], 'nested.key_2_key-2-value'],
    ['test nested descriptors with nested request', realistic, [['key_2', 'key-2-value'], ['key_3', 'requested-key3-value']], 'nested.key_2_key-2-value.key_3_requested-key3-value'],
  ];
  it('TestDetailedMetric', async () => {
    for (const [name, yaml, entries, statKey] of detailedCases) {
      await load({ 'detailed.yaml': yaml });
      const status = await getLimit('nested', entries, statKey);
      expect(status.currentLimit, name).toBeDefined();
    }
  });

  // The value_to_metric tests' configurations: route → http_method → subject_id (60 a minute), with flags.
  const chain = (domain: string, routeFlag: string, methodFlag: string, leafFlag = '') =>
    `domain: ${domain}\ndescriptors:\n  - key: route\n${routeFlag}    descriptors:\n      - key: http_method\n${methodFlag}        descriptors:\n          - key: subject_id\n${leafFlag}            rate_limit: { requests_per_unit: 60, unit: minute }\n`;
  const v2m = '    value_to_metric: true\n';
  const v2mInner = '        value_to_metric: true\n';
  const threeEntries = (route: string, method: string, subject: string): Entry[] => [
    ['route', route],
    ['http_method', method],
    ['subject_id', subject],
  ];

  it('TestValueToMetric_UsesRuntimeValuesInStats', async () => {
    await load({ 'inline.yaml': chain('domain', v2m, v2mInner) });
    const key = 'domain.route_draw.http_method_GET.subject_id';
    const within = await serve.stat(key, 'within_limit');
    expectLimit(await getLimit('domain', threeEntries('draw', 'GET', '123'), key), 60, 'MINUTE');
    expect((await serve.stat(key, 'within_limit')) - within).toBe(1);
  });

  it('TestValueToMetric_DefaultKeyIncludesValueAtThatLevel', async () => {
    await load({ 'inline.yaml': 'domain: d\ndescriptors:\n  - key: k1\n    value_to_metric: true\n    descriptors:\n      - { key: k2, rate_limit: { requests_per_unit: 1, unit: second } }\n' });
    expect((await getLimit('d', [['k1', 'A'], ['k2', 'foo']], 'd.k1_A.k2')).currentLimit).toBeDefined();
  });

  it('TestValueToMetric_MidLevelOnly', async () => {
    await load({ 'inline.yaml': 'domain: d\ndescriptors:\n  - key: k1\n    descriptors:\n      - key: k2\n        value_to_metric: true\n        descriptors:\n          - { key: k3, rate_limit: { requests_per_unit: 1, unit: second } }\n' });
    expect((await getLimit('d', [['k1', 'X'], ['k2', 'Y'], ['k3', 'Z']], 'd.k1.k2_Y.k3')).currentLimit).toBeDefined();
  });

  it('TestValueToMetric_NoFlag_Unchanged', async () => {
    await load({ 'inline.yaml': 'domain: d\ndescriptors:\n  - key: k1\n    descriptors:\n      - { key: k2, rate_limit: { requests_per_unit: 1, unit: second } }\n' });
    expect((await getLimit('d', [['k1', 'X'], ['k2', 'Y']], 'd.k1.k2')).currentLimit).toBeDefined();
  });

  it('TestValueToMetric_DoesNotOverrideDetailedMetric', async () => {
    await load({ 'inline.yaml': chain('domain', v2m, v2mInner, '            detailed_metric: true\n') });
    expectLimit(await getLimit('domain', threeEntries('draw', 'GET', '123'), 'domain.route_draw.http_method_GET.subject_id_123'), 60, 'MINUTE');
  });

  it('TestValueToMetric_WithConfiguredValues', async () => {
    await load({
      'inline.yaml': `domain: test-domain
descriptors:
  - key: route
    value_to_metric: true
    descriptors:
      - key: http_method
        value: GET
        value_to_metric: true
        descriptors:
          - { key: subject_id, rate_limit: { requests_per_unit: 60, unit: minute } }
      - key: http_method
        value: POST
        value_to_metric: true
        descriptors:
          - { key: subject_id, rate_limit: { requests_per_unit: 30, unit: minute } }
`,
    });
    expectLimit(await getLimit('test-domain', threeEntries('api', 'GET', 'user123'), 'test-domain.route_api.http_method_GET.subject_id'), 60, 'MINUTE');
    expectLimit(await getLimit('test-domain', threeEntries('api', 'POST', 'user456'), 'test-domain.route_api.http_method_POST.subject_id'), 30, 'MINUTE');
  });

  it('TestValueToMetric_WithWildcard', async () => {
    await load({
      'inline.yaml': `domain: domain
descriptors:
  - key: user
    value_to_metric: true
    descriptors:
      - key: action
        value: read*
        value_to_metric: true
        descriptors:
          - { key: resource, rate_limit: { requests_per_unit: 100, unit: minute } }
`,
    });
    expectLimit(
      await getLimit(
        'domain',
        [
          ['user', 'alice'],
          ['action', 'readfile'],
          ['resource', 'documents'],
        ],
        'domain.user_alice.action_readfile.resource',
      ),
      100,
      'MINUTE',
    );
    await getLimit(
      'domain',
      [
        ['user', 'bob'],
        ['action', 'readdata'],
        ['resource', 'database'],
      ],
      'domain.user_bob.action_readdata.resource',
    );
  });

  it('TestValueToMetric_WithEmptyValue', async () => {
    await load({ 'inline.yaml': chain('domain', v2m, v2mInner) });
    await getLimit('domain', threeEntries('', 'GET', '123'), 'domain.route.http_method_GET.subject_id');
    await getLimit('domain', threeEntries('draw', '', '123'), 'domain.route_draw.http_method.subject_id');
    const key = 'domain.route.http_method.subject_id';
    const within = await serve.stat(key, 'within_limit');
    await getLimit('domain', threeEntries('', '', '123'), key);
    expect((await serve.stat(key, 'within_limit')) - within).toBe(1);
  });

  it('TestValueToMetric_FullKeyMatchesStatsKey', async () => {
    await load({ 'inline.yaml': chain('test-domain', v2m, v2mInner) });
    await getLimit('test-domain', threeEntries('api', 'GET', 'user123'), 'test-domain.route_api.http_method_GET.subject_id');
    await load({ 'inline.yaml': chain('test-domain-2', '', '') });
    await getLimit('test-domain-2', threeEntries('api', 'GET', 'user123'), 'test-domain-2.route.http_method.subject_id');
    await load({ 'inline.yaml': chain('test-domain-3', '', '', '            detailed_metric: true\n') });
    await getLimit('test-domain-3', threeEntries('api', 'GET', 'user123'), 'test-domain-3.route_api.http_method_GET.subject_id_user123');
  });

  it('TestShareThreshold', async () => {
    await load({ 'share_threshold.yaml': fixture('share_threshold.yaml') });
    await roomInWindow(60_000, 10_000); // counts compared within one minute
    // 1. Basic: values matching files/* share one limit, one stats key and (the point of it) one counter.
    const first = await getLimit('test-domain', [['files', 'files/a.pdf']], 'test-domain.files_files/*');
    expectLimit(first, 100, 'MINUTE');
    const second = await getLimit('test-domain', [['files', 'files/b.csv']], 'test-domain.files_files/*');
    const third = await getLimit('test-domain', [['files', 'files/c.txt']], 'test-domain.files_files/*');
    expect([second.limitRemaining, third.limitRemaining]).toEqual([first.limitRemaining! - 1, first.limitRemaining! - 2]);
    // 2. share_threshold over value_to_metric and detailed_metric: the stats key holds the pattern.
    expectLimit(await getLimit('test-domain', [['route', 'api/v1'], ['method', 'GET']], 'test-domain.route_api/*.method'), 60, 'MINUTE');
    expectLimit(await getLimit('test-domain', [['service', 'svc/user'], ['endpoint', 'get']], 'test-domain.service_svc/*.endpoint_get'), 80, 'MINUTE');
    // 3. Nested wildcards.
    expectLimit(await getLimit('test-domain', [['nested', 'parent'], ['files', 'nested/file1.txt']], 'test-domain.nested_parent.files_nested/*'), 200, 'MINUTE');
    expectLimit(await getLimit('test-domain', [['files', 'top/file1.txt'], ['files', 'nested/file1.txt']], 'test-domain.files_top/*.files_nested/*'), 300, 'MINUTE');
    const both = async (a: string, b: string) => (await getLimit('test-domain', [['files', a], ['files', b]])).limitRemaining!;
    const shared = await both('top/x', 'nested/y');
    expect(await both('top/other', 'nested/other')).toBe(shared - 1); // both entries share
    expectLimit(await getLimit('test-domain', [['path', 'path/foo'], ['file', 'file/doc1'], ['type', 'pdf']], 'test-domain.path_path/*.file_file/*.type'), 120, 'MINUTE');
    // The child without share_threshold keeps a counter per value: another file, a fresh count.
    const mixed = async (file: string) => (await getLimit('test-domain', [['path', 'path/foo'], ['file', file], ['type', 'pdf']])).limitRemaining!;
    const fresh = `file/${Date.now()}`;
    expect(await mixed(fresh)).toBe(119);
    expect(await mixed(`${fresh}-2`)).toBe(119);
    expectLimit(await getLimit('test-domain', [['user', 'user/alice'], ['resource', 'res/file1'], ['action', 'read']], 'test-domain.user_user/*.resource_res/*.action'), 150, 'MINUTE');
    // 4. An explicit value wins over a wildcard: its own limit, its own stats.
    expectLimit(await getLimit('test-domain', [['file', 'test1']], 'test-domain.file_test1'), 50, 'MINUTE');
    const wild = [];
    for (const value of ['test2', 'test23', 'test123']) wild.push(await getLimit('test-domain', [['file', value]], 'test-domain.file_test*'));
    for (const s of wild) expectLimit(s, 100, 'MINUTE');
    expect(wild.map((s) => s.limitRemaining)).toEqual([wild[0]!.limitRemaining!, wild[0]!.limitRemaining! - 1, wild[0]!.limitRemaining! - 2]);
    // 5. A middle wildcard.
    for (const value of ['/api/v1', '/api-beta-v1', '/apiXYZv1']) expectLimit(await getLimit('test-domain', [['midpath', value]], 'test-domain.midpath_/api*v1'), 100, 'MINUTE');
    expectNone(await getLimit('test-domain', [['midpath', '/api/v2']]));
    // 6. Several wildcards.
    for (const value of ['svcAepBrpc', 'svcXXXepYYYrpc', 'svceprpc']) expectLimit(await getLimit('test-domain', [['multiroute', value]], 'test-domain.multiroute_svc*ep*rpc'), 50, 'MINUTE');
    expectNone(await getLimit('test-domain', [['multiroute', 'svcABCrpc']]));
    // 7. share_threshold over value_to_metric, with a middle wildcard.
    await getLimit('test-domain', [['midroute', '/api/v2']], 'test-domain.midroute_/api*v2');
    await getLimit('test-domain', [['midroute', '/api-beta-v2']], 'test-domain.midroute_/api*v2');
    // 8. Nested middle wildcards.
    await getLimit('test-domain', [['tenant', 't1prod'], ['resource', 'resAv2']], 'test-domain.tenant_t*prod.resource_res*v2');
    await getLimit('test-domain', [['tenant', 't99prod'], ['resource', 'resBBBv2']], 'test-domain.tenant_t*prod.resource_res*v2');
  });

  const wildYaml = (value: string, flags: string) => `domain: test-domain\ndescriptors:\n  - key: wild\n    value: "${value}"\n${flags}    rate_limit: { requests_per_unit: 20, unit: minute }\n`;
  it('TestWildcardStatsBehavior', async () => {
    await load({ 'inline.yaml': wildYaml('foo*', '') });
    await getLimit('test-domain', [['wild', 'foo1']], 'test-domain.wild_foo*');
    await load({ 'inline.yaml': wildYaml('foo*', '    value_to_metric: true\n') });
    await getLimit('test-domain', [['wild', 'foo1']], 'test-domain.wild_foo1');
    await load({ 'inline.yaml': wildYaml('foo*', '    share_threshold: true\n') });
    await getLimit('test-domain', [['wild', 'foo1']], 'test-domain.wild_foo*');
    await load({ 'inline.yaml': wildYaml('foo*', '    share_threshold: true\n    value_to_metric: true\n') });
    await getLimit('test-domain', [['wild', 'foo1']], 'test-domain.wild_foo*');
    await load({
      'inline.yaml': 'domain: test-domain\ndescriptors:\n  - key: wild\n    value: "foo*"\n    descriptors:\n      - key: other\n        value_to_metric: true\n        descriptors:\n          - { key: limit, rate_limit: { requests_per_unit: 20, unit: minute } }\n',
    });
    await getLimit(
      'test-domain',
      [
        ['wild', 'foo1'],
        ['other', 'bar'],
        ['limit', 'X'],
      ],
      'test-domain.wild_foo*.other_bar.limit',
    );
    await load({ 'inline.yaml': wildYaml('foo*bar*', '') });
    await getLimit('test-domain', [['wild', 'foo123bar456']], 'test-domain.wild_foo*bar*');
    await getLimit('test-domain', [['wild', 'fooXbarY']], 'test-domain.wild_foo*bar*');
    await load({ 'inline.yaml': wildYaml('foo*bar*', '    value_to_metric: true\n') });
    await getLimit('test-domain', [['wild', 'foo123bar456']], 'test-domain.wild_foo123bar456');
  });

  it('TestMetadata', async () => {
    await load({ 'metadata.yaml': fixture('metadata.yaml') });
    const metadataOf = (r: { dynamicMetadata?: StructValue }) => r.dynamicMetadata?.fields?.['metadata']?.structValue?.fields;
    const one = await serve.answer(request('test-domain', [d(['key1', 'value1'], ['subkey1', 'something'])]));
    expectLimit(one.statuses![0]!, 5, 'SECOND');
    expect(metadataOf(one)?.['name']?.stringValue).toBe('service_1');
    const two = await serve.answer(request('test-domain', [d(['key2', 'something'])]));
    expectLimit(two.statuses![0]!, 20, 'MINUTE');
    expect(metadataOf(two)?.['service_with_quota']?.structValue?.fields?.['name']?.stringValue).toBe('service_2');
  });
});

describe('envoyproxy/ratelimit test/config/config_test.go with domains merged (MERGE_DOMAIN_CONFIG: --envoy-merge-domains)', () => {
  let merged: EnvoyServe;
  beforeAll(async () => {
    merged = await startEnvoyServe({ 'merge_domain_key1.yaml': fixture('merge_domain_key1.yaml'), 'merge_domain_key2.yaml': fixture('merge_domain_key2.yaml') }, ['--envoy-merge-domains']);
  }, 30_000);
  afterAll(async () => {
    await merged?.stop();
  });

  it('TestDomainMerge', async () => {
    const ask = async (entries: Entry[]) => (await merged.answer(request('test-domain', [d(...entries)]))).statuses![0]!;
    expectNone((await merged.answer(request('foo_domain', [d(['key1', 'value1'])]))).statuses![0]!);
    expect((await ask([['key1', 'value1']])).currentLimit?.requestsPerUnit).toBe(10);
    expect((await ask([['key2', 'value2']])).currentLimit?.requestsPerUnit).toBe(20);
  });

  it('TestDuplicateKeyDomainMerge', async () => {
    // The same file twice: its second reading repeats a key of the merged domain.
    const file = `${merged.configDir}/merge_domain_key1.yaml`;
    const started = await serveRefusing([file, file], ['--envoy-merge-domains']);
    expect(started.code).toBe(1);
    expect(started.stderr).toContain("merge_domain_key1.yaml: duplicate descriptor composite key 'test-domain.key1_value1'");
  });
});
