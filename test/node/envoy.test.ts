import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseServeArgs } from '../../src/cli/serve.js';
import { envoyRateLimitClient } from '../../src/node/api/envoy-service.js';
import { parseEnvoyConfigText, readEnvoyConfigFile } from '../../src/node/ops/envoy-config-file.js';
import type { RingLimitNode } from '../../src/node/node.js';
import { startCluster, stopAll, unaryCall } from './helpers.js';

const CONFIG = fileURLToPath(new URL('../limiter/fixtures/envoy-ratelimit.yaml', import.meta.url));

interface Status {
  code: string;
  currentLimit?: { name?: string; requestsPerUnit?: number; unit?: string };
  limitRemaining?: number;
  durationUntilReset?: { seconds?: number; nanos?: number };
}
interface Response {
  overallCode: string;
  statuses?: Status[];
  responseHeadersToAdd?: { key: string; value: string }[];
}

/** What Envoy sends: a domain, descriptors of key/value entries, and hits_addend. */
const descriptor = (...pairs: [string, string][]) => ({ entries: pairs.map(([key, value]) => ({ key, value })) });

describe("Envoy's global rate limit API (envoy.service.ratelimit.v3.RateLimitService) on every node", () => {
  let nodes: RingLimitNode[] = [];
  const clients: grpc.Client[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await stopAll(nodes);
  });
  const ask = (node: RingLimitNode, request: object) => unaryCall<Response>(clients, envoyRateLimitClient(), node, 'shouldRateLimit', request);

  it('answers an envoyproxy/ratelimit configuration unchanged: counts per descriptor across the cluster, nested rules, replaces, shadow mode, unlimited, zero, unknown', async () => {
    nodes = await startCluster(3, { envoyConfig: readEnvoyConfigFile(CONFIG), envoy: { responseHeaders: { limit: 'X-RateLimit-Limit', remaining: 'X-RateLimit-Remaining', reset: 'X-RateLimit-Reset' } } });
    const key = `k-${Date.now()}`;
    // A day's rule of 3, asked through every node in turn: exactly 3 pass.
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push((await ask(nodes[i % 3]!, { domain: 'edge', descriptors: [descriptor(['api_key', key])] })).response?.overallCode);
    expect(codes).toEqual(['OK', 'OK', 'OK', 'OVER_LIMIT', 'OVER_LIMIT']);
    const over = (await ask(nodes[0]!, { domain: 'edge', descriptors: [descriptor(['api_key', key])] })).response!;
    expect(over.statuses![0]).toMatchObject({ code: 'OVER_LIMIT', currentLimit: { requestsPerUnit: 3, unit: 'DAY' } });
    expect(over.statuses![0]!.durationUntilReset!.seconds).toBeLessThanOrEqual(86_400);
    expect(over.responseHeadersToAdd).toEqual(expect.arrayContaining([{ key: 'X-RateLimit-Limit', value: '3' }, { key: 'X-RateLimit-Remaining', value: '0' }]));
    // Whole seconds, as envoyproxy/ratelimit sends them: the reset header reads the same.
    expect(over.statuses![0]!.durationUntilReset!.nanos).toBeUndefined();
    expect(over.responseHeadersToAdd).toContainEqual({ key: 'X-RateLimit-Reset', value: String(over.statuses![0]!.durationUntilReset!.seconds) });
    // hits_addend counts as several hits; another value of a key-only rule has its own bucket.
    const other = `${key}-b`;
    expect((await ask(nodes[1]!, { domain: 'edge', descriptors: [descriptor(['api_key', other])], hitsAddend: 2 })).response!.statuses![0]).toMatchObject({ code: 'OK', limitRemaining: 1 });
    expect((await ask(nodes[2]!, { domain: 'edge', descriptors: [descriptor(['api_key', other])], hitsAddend: 2 })).response!.overallCode).toBe('OVER_LIMIT');
    // Over-limit hits count too (the peer's INCRBY): 4 of 3 used, so a check that counts nothing is over as well.
    expect((await ask(nodes[0]!, { domain: 'edge', descriptors: [{ ...descriptor(['api_key', other]), hitsAddend: { value: 0 } }] })).response!.statuses![0]).toMatchObject({ code: 'OVER_LIMIT', limitRemaining: 0 });

    // Several descriptors in one request: a status each, in order; `replaces` drops per_user.
    const mixed = (await ask(nodes[0]!, {
      domain: 'edge',
      descriptors: [
        descriptor(['category', 'account']),
        descriptor(['source_cluster', 'proxy'], ['destination_cluster', 'users']),
        descriptor(['remote_address', '10.1.2.3'], ['path', '/healthz']),
        descriptor(['nothing', 'here']),
        descriptor(['tier', '200']),
      ],
    })).response!;
    expect(mixed.overallCode).toBe('OVER_LIMIT'); // tier 200: 0 per day
    expect(mixed.statuses!.map((s) => s.code)).toEqual(['OK', 'OK', 'OK', 'OK', 'OVER_LIMIT']);
    expect(mixed.statuses![0]!.currentLimit).toMatchObject({ requestsPerUnit: 4, unit: 'MINUTE' });
    expect(mixed.statuses![1]!.currentLimit).toBeUndefined(); // replaced by category_account's rule
    expect(mixed.statuses![2]!.currentLimit).toBeUndefined(); // unlimited
    expect(mixed.statuses![3]!.currentLimit).toBeUndefined(); // no rule
    // Shadow mode: decided and reported, never refused.
    const shadow = (await ask(nodes[1]!, { domain: 'edge', descriptors: [descriptor(['remote_address', '10.9.9.9'], ['path', '/search'])], hitsAddend: 150 })).response!;
    expect(shadow.overallCode).toBe('OK');
    expect(shadow.statuses![0]!.currentLimit).toMatchObject({ requestsPerUnit: 100, unit: 'HOUR' });
  });

  it('week, month and year: windows of the UTC calendar, counted across the cluster, reset at the next Monday, month and year', async () => {
    const config = parseEnvoyConfigText(
      [
        'domain: quotas',
        'descriptors:',
        '  - { key: weekly, rate_limit: { unit: week, requests_per_unit: 2 } }',
        '  - { key: monthly, rate_limit: { unit: month, requests_per_unit: 3 } }',
        '  - { key: yearly, rate_limit: { unit: year, requests_per_unit: 1 } }',
        '  - { key: never, rate_limit: { unit: month, requests_per_unit: 0 } }',
      ].join('\n'),
      'quotas.yaml',
    );
    nodes = await startCluster(3, { envoyConfig: config });
    const user = `u-${Date.now()}`;
    const now = new Date();
    const y = now.getUTCFullYear();
    const m = now.getUTCMonth();
    const daysSinceMonday = (now.getUTCDay() + 6) % 7;
    const resets: Record<string, number> = {
      weekly: Date.UTC(y, m, now.getUTCDate() - daysSinceMonday + 7),
      monthly: Date.UTC(y, m + 1, 1),
      yearly: Date.UTC(y + 1, 0, 1),
      never: Date.UTC(y, m + 1, 1),
    };
    for (const [rule, limit] of [['weekly', 2], ['monthly', 3], ['yearly', 1]] as const) {
      const codes = [];
      for (let i = 0; i < limit + 2; i++) codes.push((await ask(nodes[i % 3]!, { domain: 'quotas', descriptors: [descriptor([rule, user])] })).response!.overallCode);
      expect(codes, rule).toEqual([...Array<string>(limit).fill('OK'), 'OVER_LIMIT', 'OVER_LIMIT']);
    }
    for (const rule of ['weekly', 'monthly', 'yearly', 'never']) {
      const status = (await ask(nodes[1]!, { domain: 'quotas', descriptors: [descriptor([rule, user])] })).response!.statuses![0]!;
      expect(status.code, rule).toBe('OVER_LIMIT');
      expect(status.currentLimit?.unit, rule).toBe(rule === 'weekly' ? 'WEEK' : rule === 'yearly' ? 'YEAR' : 'MONTH');
      const resetAt = Date.now() + Number(status.durationUntilReset?.seconds ?? 0) * 1000 + (status.durationUntilReset?.nanos ?? 0) / 1e6;
      expect(Math.abs(resetAt - resets[rule]!), rule).toBeLessThan(5_000);
    }
    // Envoy's own limit override in a calendar unit.
    const override = { ...descriptor(['weekly', `${user}-o`]), limit: { requestsPerUnit: 1, unit: 'MONTH' } };
    expect((await ask(nodes[2]!, { domain: 'quotas', descriptors: [override] })).response!.overallCode).toBe('OK');
    const again = (await ask(nodes[0]!, { domain: 'quotas', descriptors: [override] })).response!;
    expect(again.overallCode).toBe('OVER_LIMIT');
    expect(again.statuses![0]!.currentLimit).toMatchObject({ requestsPerUnit: 1, unit: 'MONTH' });
  });

  it('refuses bad input with INVALID_ARGUMENT, and answers FAILED_PRECONDITION on a node without a configuration', async () => {
    nodes = await startCluster(1, { envoyConfig: readEnvoyConfigFile(CONFIG) });
    for (const request of [{ domain: '', descriptors: [descriptor(['a', 'b'])] }, { domain: 'edge', descriptors: [] }, { domain: 'edge', descriptors: [{ entries: [] }] }, { domain: 'edge', descriptors: Array.from({ length: 65 }, () => descriptor(['a', 'b'])) }]) {
      expect((await ask(nodes[0]!, request)).error?.code, JSON.stringify(request).slice(0, 80)).toBe(grpc.status.INVALID_ARGUMENT);
    }
    expect((await ask(nodes[0]!, { domain: 'unknown', descriptors: [descriptor(['a', 'b'])] })).response).toMatchObject({ overallCode: 'OK' });
    nodes[0]!.envoyConfig = undefined;
    expect((await ask(nodes[0]!, { domain: 'edge', descriptors: [descriptor(['api_key', 'x'])] })).error?.code).toBe(grpc.status.FAILED_PRECONDITION);
  });
});

describe('serve: an envoyproxy/ratelimit file given to --policies or --envoy-config', () => {
  it('is served to Envoy unchanged; a ringlimit policy file stays policies; every unit is taken', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ringlimit-envoy-'));
    try {
      const viaPolicies = parseServeArgs(['--policies', CONFIG]);
      expect(viaPolicies.options.envoyConfig?.domainNames).toEqual(['edge', 'mongo_cps']);
      expect(viaPolicies.options.policies).toBeUndefined();
      expect(viaPolicies).toMatchObject({ envoyPaths: [CONFIG], policyFile: undefined });
      const ours = join(dir, 'policies.yaml');
      writeFileSync(ours, 'defaults: { search: { limit: 5, window: 1m } }\n');
      const both = parseServeArgs(['--policies', ours, '--envoy-config', CONFIG]);
      expect(both.options.policies).toBeDefined();
      expect(both.options.envoyConfig).toBeDefined();
      const monthly = join(dir, 'monthly.yaml');
      writeFileSync(monthly, 'domain: d\ndescriptors: [{ key: k, rate_limit: { unit: month, requests_per_unit: 5 } }]\n');
      expect(parseServeArgs(['--envoy-config', monthly]).options.envoyConfig?.domainNames).toEqual(['d']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
