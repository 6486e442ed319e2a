import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { d, request, startEnvoyServe, type Descriptor, type EnvoyServe, type Response } from './envoy-serve.js';

/**
 * envoyproxy/ratelimit's test/service/ratelimit_test.go, ported to run against real `serve`
 * processes over gRPC. That file mocks the configuration and the cache and hands the
 * service canned statuses ("this descriptor is over"); here each test's limits are written in
 * a configuration file and pushed over (or kept under) with real hits — per-descriptor
 * hits_addend — so the statuses come from real counters. The service's settings, which that
 * project reads from its environment (SHADOW_MODE, QUOTA_MODE, LIMIT_RESPONSE_HEADERS_ENABLED,
 * LIMIT_*_HEADER, RESPONSE_DYNAMIC_METADATA), are serve's --envoy-* flags.
 *
 * Not ported, and why (docs/envoy.md): TestCacheError (no cache: a counter the cluster
 * cannot reach is answered by --on-unavailable), TestServiceTracer (no OpenTelemetry
 * spans), TestServiceHealthStatus and TestServiceHealthStatusAtLeastOneConfigLoaded
 * (ringlimit's readiness is /readyz and the Health RPC; serve refuses to start without a
 * good configuration instead of starting unhealthy).
 */

const UNLIMITED = 4_294_967_295;
let unique = 0;
/** A value no earlier request used: a fresh counter on a key-only rule. */
const fresh = (): string => `v${process.pid}-${Date.now()}-${++unique}`;
/** A descriptor of one entry, with `hits` counted on it. */
const hit = (key: string, value: string, hits: number): Descriptor => ({ ...d([key, value]), hitsAddend: { value: hits } });
const rule = (key: string, perMinute: number, extra = ''): string => `  - key: ${key}\n${extra}    rate_limit: { unit: minute, requests_per_unit: ${perMinute} }\n`;
const domain = (name: string, ...rules: string[]): string => `domain: ${name}\ndescriptors:\n${rules.join('')}`;

const CONFIG = {
  'test-domain.yaml': domain('test-domain', rule('other', 1)),
  'different-domain.yaml': `domain: different-domain\ndescriptors:\n  - key: foo\n    rate_limit: { unit: minute, requests_per_unit: 10, name: key_name }\n`,
  'shadow-domain.yaml': domain('shadow-domain', rule('foo', 10, '    shadow_mode: true\n'), rule('hello', 10, '    shadow_mode: true\n'), rule('plain', 10)),
  'some-domain.yaml': `domain: some-domain\ndescriptors:\n  - key: foo\n    rate_limit: { unit: minute, requests_per_unit: 10 }\n  - key: baz\n    value: qux\n    rate_limit: { unlimited: true }\n`,
  'quota-domain.yaml': domain('quota-domain', rule('regular', 5), rule('quota', 3, '    quota_mode: true\n'), rule('quota1', 5, '    quota_mode: true\n'), rule('quota2', 3, '    quota_mode: true\n')),
};

function statusShape(r: Response): { code: string; limit: number | undefined; unit: string | undefined; remaining: number }[] {
  return (r.statuses ?? []).map((s) => ({ code: s.code, limit: s.currentLimit?.requestsPerUnit, unit: s.currentLimit?.unit, remaining: s.limitRemaining ?? 0 }));
}

describe('envoyproxy/ratelimit test/service/ratelimit_test.go, against serve (default settings)', () => {
  let serve: EnvoyServe;
  beforeAll(async () => {
    serve = await startEnvoyServe(CONFIG);
  }, 30_000);
  afterAll(async () => {
    await serve?.stop();
  });

  it('TestService', async () => {
    const first = await serve.answer(request('test-domain', [d(['hello', 'world'])]));
    expect(first.overallCode).toBe('OK');
    expect(statusShape(first)).toEqual([{ code: 'OK', limit: undefined, unit: undefined, remaining: 0 }]);
    // A configuration reload (the same configuration again, under another name).
    const loadsBefore = await serve.metric('ringlimit_envoy_config_loads_total', { result: 'success' });
    expect(await serve.load({ ...CONFIG, 'again.yaml': domain('again', rule('x', 1)) })).toBeUndefined();
    const over = await serve.answer(request('different-domain', [hit('foo', fresh(), 11), d(['hello', 'world'])]));
    expect(over.overallCode).toBe('OVER_LIMIT');
    expect(statusShape(over)).toEqual([
      { code: 'OVER_LIMIT', limit: 10, unit: 'MINUTE', remaining: 0 },
      { code: 'OK', limit: undefined, unit: undefined, remaining: 0 },
    ]);
    expect(over.statuses![0]!.currentLimit?.name).toBe('key_name');
    // A load failure: the configuration stays valid. Order does not affect results.
    expect(await serve.load({ ...CONFIG, 'broken.yaml': 'domain: broken\ndescriptors: [{ key: k, rate_limit: { unit: fortnight } }]\n' })).toContain("invalid rate limit unit 'fortnight'");
    const again = await serve.answer(request('different-domain', [d(['hello', 'world']), hit('foo', fresh(), 11)]));
    expect(again.overallCode).toBe('OVER_LIMIT');
    expect(statusShape(again).map((s) => s.code)).toEqual(['OK', 'OVER_LIMIT']);
    expect((await serve.metric('ringlimit_envoy_config_loads_total', { result: 'success' })) - loadsBefore).toBe(1);
    expect(await serve.metric('ringlimit_envoy_config_loads_total', { result: 'error' })).toBe(1);
    expect(await serve.metric('ringlimit_envoy_global_shadow_mode_total')).toBe(0);
    expect(await serve.load(CONFIG)).toBeUndefined();
  });

  it('TestRuleShadowMode', async () => {
    const r = await serve.answer(request('shadow-domain', [hit('foo', fresh(), 11), hit('hello', fresh(), 11)]));
    expect(r.overallCode).toBe('OK');
    expect(statusShape(r).map((s) => [s.code, s.remaining])).toEqual([
      ['OK', 0],
      ['OK', 0],
    ]);
  });

  it('TestMixedRuleShadowMode', async () => {
    const r = await serve.answer(request('shadow-domain', [hit('foo', fresh(), 11), hit('plain', fresh(), 11)]));
    expect(r.overallCode).toBe('OVER_LIMIT');
    expect(statusShape(r).map((s) => s.code)).toEqual(['OK', 'OVER_LIMIT']);
  });

  it('TestEmptyDomain', async () => {
    const errors = await serve.metric('ringlimit_envoy_service_errors_total');
    const { error } = await serve.ask(request('', [d(['hello', 'world'])]));
    expect(error?.code).toBe(3); // INVALID_ARGUMENT (the peer's error maps to UNKNOWN; docs/envoy.md)
    expect(error?.details).toContain('rate limit domain must not be empty');
    expect((await serve.metric('ringlimit_envoy_service_errors_total')) - errors).toBe(1);
  });

  it('TestEmptyDescriptors', async () => {
    const errors = await serve.metric('ringlimit_envoy_service_errors_total');
    const { error } = await serve.ask(request('test-domain', []));
    expect(error?.code).toBe(3);
    expect(error?.details).toContain('rate limit descriptor list must not be empty');
    expect((await serve.metric('ringlimit_envoy_service_errors_total')) - errors).toBe(1);
  });

  it('TestUnlimited', async () => {
    const r = await serve.answer(request('some-domain', [d(['foo', fresh()]), d(['hello', 'world']), d(['baz', 'qux'])]));
    expect(r.overallCode).toBe('OK');
    expect(statusShape(r)).toEqual([
      { code: 'OK', limit: 10, unit: 'MINUTE', remaining: 9 },
      { code: 'OK', limit: undefined, unit: undefined, remaining: 0 },
      { code: 'OK', limit: undefined, unit: undefined, remaining: UNLIMITED },
    ]);
  });

  it('TestServicePerDescriptorQuotaMode', async () => {
    // The regular limit over: OVER_LIMIT, though the quota is under.
    const r = await serve.answer(request('quota-domain', [hit('regular', fresh(), 6), hit('quota', fresh(), 3)]));
    expect(r.overallCode).toBe('OVER_LIMIT');
    expect(statusShape(r).map((s) => [s.code, s.remaining])).toEqual([
      ['OVER_LIMIT', 0],
      ['OK', 0],
    ]);
  });

  it('TestServiceMixedPerDescriptorModes', async () => {
    // The only quota over: all quotas are over, so OVER_LIMIT.
    const r = await serve.answer(request('quota-domain', [hit('regular', fresh(), 5), hit('quota', fresh(), 4)]));
    expect(r.overallCode).toBe('OVER_LIMIT');
    expect(statusShape(r).map((s) => [s.code, s.remaining])).toEqual([
      ['OK', 0],
      ['OVER_LIMIT', 0],
    ]);
  });

  it('TestServiceMixedPerDescriptorModesUnderLimit', async () => {
    const r = await serve.answer(request('quota-domain', [hit('regular', fresh(), 5), hit('quota', fresh(), 3)]));
    expect(r.overallCode).toBe('OK');
    expect(statusShape(r).map((s) => s.code)).toEqual(['OK', 'OK']);
  });

  it('TestServiceQuotaModeOnlyAllOverTheLimit', async () => {
    const r = await serve.answer(request('quota-domain', [hit('quota1', fresh(), 6), hit('quota2', fresh(), 4)]));
    expect(r.overallCode).toBe('OVER_LIMIT');
    expect(statusShape(r).map((s) => s.code)).toEqual(['OVER_LIMIT', 'OVER_LIMIT']);
  });

  it('TestServiceQuotaModeOnlySomeOverTheLimit', async () => {
    const r = await serve.answer(request('quota-domain', [hit('quota1', fresh(), 6), hit('quota2', fresh(), 3)]));
    expect(r.overallCode).toBe('OK');
    expect(statusShape(r).map((s) => s.code)).toEqual(['OVER_LIMIT', 'OK']);
  });
});

describe('envoyproxy/ratelimit test/service/ratelimit_test.go: SHADOW_MODE (--envoy-shadow-mode)', () => {
  let serve: EnvoyServe;
  beforeAll(async () => {
    serve = await startEnvoyServe(CONFIG, ['--envoy-shadow-mode']);
  }, 30_000);
  afterAll(async () => {
    await serve?.stop();
  });

  it('TestServiceGlobalShadowMode', async () => {
    const r = await serve.answer(request('different-domain', [hit('foo', fresh(), 11), d(['hello', 'world'])]));
    // OK overall, though the limit's status is OVER_LIMIT.
    expect(r.overallCode).toBe('OK');
    expect(statusShape(r).map((s) => s.code)).toEqual(['OVER_LIMIT', 'OK']);
    expect(await serve.metric('ringlimit_envoy_global_shadow_mode_total')).toBe(1);
    expect(await serve.metric('ringlimit_envoy_config_loads_total', { result: 'error' })).toBe(0);
  });

  it('TestServiceQuotaModeWithShadowMode', async () => {
    const before = await serve.metric('ringlimit_envoy_global_shadow_mode_total');
    const r = await serve.answer(request('quota-domain', [hit('quota1', fresh(), 6), hit('quota2', fresh(), 4)]));
    expect(r.overallCode).toBe('OK');
    expect(statusShape(r).map((s) => s.code)).toEqual(['OVER_LIMIT', 'OVER_LIMIT']);
    expect((await serve.metric('ringlimit_envoy_global_shadow_mode_total')) - before).toBe(1);
  });

  it('TestServiceMixedModeWithShadowMode', async () => {
    const before = await serve.metric('ringlimit_envoy_global_shadow_mode_total');
    const r = await serve.answer(request('quota-domain', [hit('regular', fresh(), 6), hit('quota', fresh(), 4)]));
    expect(r.overallCode).toBe('OK');
    expect(statusShape(r).map((s) => s.code)).toEqual(['OVER_LIMIT', 'OVER_LIMIT']);
    expect((await serve.metric('ringlimit_envoy_global_shadow_mode_total')) - before).toBe(1);
  });
});

describe('envoyproxy/ratelimit test/service/ratelimit_test.go: response headers (--envoy-response-headers)', () => {
  const headersOf = async (flags: string[]) => {
    const serve = await startEnvoyServe(CONFIG, flags);
    try {
      const r = await serve.answer(request('different-domain', [hit('foo', fresh(), 11), d(['hello', 'world'])]));
      expect(r.overallCode).toBe('OVER_LIMIT');
      return { headers: r.responseHeadersToAdd, reset: String(r.statuses![0]!.durationUntilReset!.seconds) };
    } finally {
      await serve.stop();
    }
  };

  it('TestServiceWithCustomRatelimitHeaders', async () => {
    const { headers, reset } = await headersOf(['--envoy-response-headers', '--envoy-header-limit', 'A-Ratelimit-Limit', '--envoy-header-remaining', 'A-Ratelimit-Remaining', '--envoy-header-reset', 'A-Ratelimit-Reset']);
    expect(headers).toEqual([
      { key: 'A-Ratelimit-Limit', value: '10' },
      { key: 'A-Ratelimit-Remaining', value: '0' },
      { key: 'A-Ratelimit-Reset', value: reset },
    ]);
    expect(Number(reset)).toBeGreaterThan(0);
    expect(Number(reset)).toBeLessThanOrEqual(60);
  }, 30_000);

  it('TestServiceWithDefaultRatelimitHeaders', async () => {
    const { headers, reset } = await headersOf(['--envoy-response-headers']);
    expect(headers).toEqual([
      { key: 'RateLimit-Limit', value: '10' },
      { key: 'RateLimit-Remaining', value: '0' },
      { key: 'RateLimit-Reset', value: reset },
    ]);
  }, 30_000);

  it('sends no headers unless asked, as the peer (LIMIT_RESPONSE_HEADERS_ENABLED defaults to false)', async () => {
    const { headers } = await headersOf([]);
    expect(headers ?? []).toEqual([]);
  }, 30_000);
});

describe('envoyproxy/ratelimit test/service/ratelimit_test.go: QUOTA_MODE and RESPONSE_DYNAMIC_METADATA', () => {
  let serve: EnvoyServe;
  const withMetadata = {
    'quota-domain.yaml': `domain: quota-domain
descriptors:
  - key: regular
    rate_limit: { unit: minute, requests_per_unit: 10 }
    metadata: { name: service_1 }
  - key: quota
    rate_limit: { unit: minute, requests_per_unit: 5 }
    metadata: { name: service_2 }
  - key: other
    rate_limit: { unit: minute, requests_per_unit: 5 }
    metadata: { some_other_name: service_2 }
`,
  };
  beforeAll(async () => {
    serve = await startEnvoyServe(withMetadata, ['--envoy-quota-mode', '--envoy-dynamic-metadata']);
  }, 30_000);
  afterAll(async () => {
    await serve?.stop();
  });
  const passedMetadata = (r: Response) => {
    const fields = r.dynamicMetadata?.fields?.['metadata']?.structValue?.fields ?? {};
    return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v.stringValue]));
  };

  it('TestServiceGlobalQuotaMode', async () => {
    const r = await serve.answer(request('quota-domain', [hit('regular', fresh(), 11), hit('quota', fresh(), 6)]));
    // Every limit is a quota, and all are over.
    expect(r.overallCode).toBe('OVER_LIMIT');
    expect(statusShape(r).map((s) => s.code)).toEqual(['OVER_LIMIT', 'OVER_LIMIT']);
  });

  it('TestMetadataReturnedForPassedDescriptors', async () => {
    const r = await serve.answer(request('quota-domain', [hit('regular', fresh(), 5), hit('quota', fresh(), 6)]));
    expect(r.overallCode).toBe('OK');
    // Only the passed descriptor's metadata.
    expect(passedMetadata(r)).toEqual({ name: 'service_1' });
    // And the request itself, as the peer describes it.
    const fields = r.dynamicMetadata?.fields;
    expect(fields?.['domain']?.stringValue).toBe('quota-domain');
    expect(fields?.['hitsAddend']?.numberValue).toBe(1);
    expect(fields?.['descriptors']?.listValue?.values?.[0]?.structValue?.fields?.['entries']?.listValue?.values?.[0]?.stringValue).toMatch(/^regular=v/);
  });

  it('TestMetadataReturnedForAllPassedDescriptors', async () => {
    const r = await serve.answer(request('quota-domain', [d(['regular', fresh()]), d(['other', fresh()])]));
    expect(r.overallCode).toBe('OK');
    expect(passedMetadata(r)).toEqual({ name: 'service_1', some_other_name: 'service_2' });
  });

  it('TestOverlappingMetadataReturnsTheFirstValue', async () => {
    const r = await serve.answer(request('quota-domain', [d(['regular', fresh()]), d(['quota', fresh()])]));
    expect(r.overallCode).toBe('OK');
    expect(passedMetadata(r)).toEqual({ name: 'service_1' });
  });
});

describe('envoyproxy/ratelimit test/service/ratelimit_test.go: no configuration', () => {
  it('TestInitialLoadError', async () => {
    // A serve given no configuration (the peer: one whose first load failed; serve refuses to start on a bad one).
    const serve = await startEnvoyServe(undefined);
    try {
      const { error } = await serve.ask(request('test-domain', [d(['hello', 'world'])]));
      expect(error?.code).toBe(9); // FAILED_PRECONDITION
      expect(error?.details).toContain('no rate limit configuration loaded');
      expect(await serve.metric('ringlimit_envoy_service_errors_total')).toBe(1);
    } finally {
      await serve.stop();
    }
  }, 30_000);
});
