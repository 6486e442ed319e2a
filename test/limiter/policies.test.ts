import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ManualClock } from '../../src/common/clock.js';
import { RateLimitError } from '../../src/common/errors.js';
import { createLimiter } from '../../src/limiter/create.js';
import { Policies, type PolicyDocument } from '../../src/limiter/policies.js';
import type { ResolvedPolicy } from '../../src/limiter/types.js';

const MIN = 60_000;

const doc: PolicyDocument = {
  defaults: {
    '*': { limit: 100, window: '1m' },
    'api.*': { limit: 600, window: '1m' },
    'api.write': { limit: 60, algorithm: 'gcra', burst: 10 },
  },
  groups: {
    free: { weight: 1 },
    pro: { weight: 5, actions: { search: { limit: 200 } } },
  },
  users: {
    alice: { group: 'pro', actions: { 'api.write': { limit: 1_000, weight: 1 } } },
    mallory: { weight: 0.1 },
  },
};

const said = (p: Policies, key: string, action: string, group?: string): Partial<ResolvedPolicy> =>
  Object.fromEntries(Object.entries(p.resolve(key, action, group)).filter(([, v]) => v !== undefined));

describe('Policies: resolution', () => {
  const p = new Policies(doc);

  it('defaults: "*" < "prefix*" < the exact action, field by field', () => {
    expect(said(p, 'bob', 'login')).toEqual({ limit: 100, windowMs: MIN });
    expect(said(p, 'bob', 'api.read')).toEqual({ limit: 600, windowMs: MIN });
    // api.write sets limit, algorithm and burst; the window comes from "api.*".
    expect(said(p, 'bob', 'api.write')).toEqual({ limit: 60, windowMs: MIN, algorithm: 'gcra', burst: 10 });
  });

  it('the group (from the request for users the document does not list) overrides the defaults, and its weight applies to every action', () => {
    expect(said(p, 'bob', 'search', 'pro')).toEqual({ limit: 200, windowMs: MIN, weight: 5 });
    expect(said(p, 'bob', 'api.read', 'pro')).toEqual({ limit: 600, windowMs: MIN, weight: 5 });
    expect(said(p, 'bob', 'search', 'free')).toEqual({ limit: 100, windowMs: MIN, weight: 1 });
    expect(said(p, 'bob', 'search', 'no-such-group')).toEqual({ limit: 100, windowMs: MIN });
  });

  it('a listed user keeps its own group and rules, whatever group the request names', () => {
    expect(said(p, 'alice', 'search', 'free')).toEqual({ limit: 200, windowMs: MIN, weight: 5 });
    expect(said(p, 'alice', 'api.write')).toEqual({ limit: 1_000, windowMs: MIN, algorithm: 'gcra', burst: 10, weight: 1 });
    expect(said(p, 'mallory', 'search', 'pro')).toEqual({ limit: 200, windowMs: MIN, weight: 0.1 });
  });

  it('agrees with a plain reference (every applicable rule, least specific first) on random documents', () => {
    const rule = fc.record({ limit: fc.option(fc.integer({ min: 1, max: 1_000 }), { nil: undefined }), weight: fc.option(fc.constantFrom(0.5, 1, 2, 5), { nil: undefined }) }, { requiredKeys: [] });
    const patterns = fc.constantFrom('*', 'a*', 'ab*', 'abc', 'ab', 'b');
    const table = fc.dictionary(patterns, rule, { maxKeys: 4 });
    const arbitrary = fc.record({
      defaults: table,
      groups: fc.dictionary(fc.constantFrom('g1', 'g2'), fc.record({ weight: fc.option(fc.constantFrom(1, 3), { nil: undefined }), actions: table }, { requiredKeys: ['actions'] }), { maxKeys: 2 }),
    });
    const clean = (o: object): object => JSON.parse(JSON.stringify(o)) as object;
    fc.assert(
      fc.property(arbitrary, fc.constantFrom('abc', 'abd', 'ab', 'b', 'zz'), fc.constantFrom(undefined, 'g1', 'g2'), (document, action, group) => {
        const compiled = new Policies(clean(document));
        // Reference: collect (level, specificity, rule) for every rule that applies, sort, overlay.
        const candidates: [number, number, Record<string, unknown>][] = [];
        const collect = (level: number, rules: Record<string, Record<string, unknown>>) => {
          for (const [pattern, r] of Object.entries(rules)) {
            const matches = pattern === '*' || (pattern.endsWith('*') ? action.startsWith(pattern.slice(0, -1)) : pattern === action);
            const specificity = pattern === '*' ? 0 : pattern.endsWith('*') ? pattern.length : 1_000;
            if (matches) candidates.push([level, specificity, r]);
          }
        };
        collect(0, clean(document.defaults) as Record<string, Record<string, unknown>>);
        const g = group === undefined ? undefined : (document.groups as Record<string, { weight?: number; actions: object }>)[group];
        if (g !== undefined) {
          if (g.weight !== undefined) candidates.push([1, -1, { weight: g.weight }]);
          collect(1, clean(g.actions) as Record<string, Record<string, unknown>>);
        }
        candidates.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
        const expected: Record<string, unknown> = {};
        for (const [, , r] of candidates) for (const [k, v] of Object.entries(r)) if (v !== undefined) expected[k] = v;
        expect(said(compiled, 'u', action, group)).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });
});

describe('Policies: validation names the path of every mistake', () => {
  const refused = (document: unknown): string => {
    try {
      new Policies(document);
    } catch (error) {
      expect(error).toBeInstanceOf(RateLimitError);
      expect((error as RateLimitError).code).toBe('INVALID_ARGUMENT');
      return (error as Error).message;
    }
    throw new Error('accepted');
  };

  it.each([
    [{ groups: { pro: { actions: { search: { limit: -5 } } } } }, /^groups\.pro\.actions\.search\.limit: must be a positive integer, got -5$/],
    [{ defaults: { search: { limit: 5, window: '5 minutes' } } }, /^defaults\.search\.window: must be a duration such as "1m"/],
    [{ defaults: { search: { limit: 5, window: '2d' } } }, /^defaults\.search\.window: must be from 1 ms to 86400000 ms/],
    [{ defaults: { search: { limt: 5 } } }, /^defaults\.search\.limt: unknown field; expected one of limit, window, algorithm, burst, weight$/],
    [{ defaults: { 'a*b': { limit: 5 } } }, /^defaults\.a\*b: a wildcard may only end an action pattern$/],
    [{ users: { bob: { group: 'gold' } } }, /^users\.bob\.group: must name a group of this document \(none defined\), got "gold"$/],
    [{ groups: { pro: { algorithm: 'leaky' } } }, /^groups\.pro\.algorithm: must be one of token-bucket, gcra, sliding-window, fixed-window/],
    [{ tiers: {} }, /^tiers: unknown field/],
    [[1, 2], /^\(document\): must be a mapping/],
    // Each rule is valid; together (a window algorithm and a burst) they are not.
    [{ defaults: { search: { limit: 5, window: '1m', burst: 10 } }, groups: { free: { algorithm: 'fixed-window' } } }, /^groups\.free: for action "search" its rules combine into an invalid one: burst: applies only to token-bucket and gcra/],
  ])('%j', (document, message) => {
    expect(refused(document)).toMatch(message);
  });
});

describe('a limiter with policies', () => {
  it('decides requests that name only key and action, and the policy wins over a request’s own fields', () => {
    const clock = new ManualClock(1_000_000);
    const limiter = createLimiter({ clock, policies: { defaults: { login: { limit: 3, window: '15m', algorithm: 'fixed-window' } } } });
    try {
      const login = { key: 'u1', action: 'login' };
      expect([1, 2, 3, 4].map(() => limiter.allow(login).allowed)).toEqual([true, true, true, false]);
      expect(limiter.allow({ ...login, key: 'u2', limit: 1_000, windowMs: 1_000 }).limit).toBe(3); // the policy wins
      // Where the policies say nothing, the request's own fields decide.
      expect(limiter.allow({ key: 'u1', action: 'other', limit: 7, windowMs: 1_000 }).limit).toBe(7);
      expect(() => limiter.allow({ key: 'u1', action: 'other' })).toThrow(/^limit: missing: give a limit, or declare one in the policies/);
    } finally {
      limiter.close();
    }
  });

  it('takes new policies at runtime; a bad document throws and the ones in force stay', () => {
    const limiter = createLimiter({ clock: new ManualClock(0), policies: { defaults: { '*': { limit: 2, window: '1m' } } } });
    try {
      expect(limiter.allow({ key: 'k', action: 'a' }).limit).toBe(2);
      expect(() => limiter.setPolicies({ defaults: { '*': { limit: 0 } } })).toThrow(/defaults\.\*\.limit/);
      expect(limiter.allow({ key: 'k', action: 'a' }).limit).toBe(2);
      limiter.setPolicies({ defaults: { '*': { limit: 50, window: '1m' } }, groups: { pro: { weight: 2 } } });
      expect(limiter.allow({ key: 'k', action: 'a', group: 'pro' }).limit).toBe(100);
      limiter.setPolicies(undefined);
      expect(() => limiter.allow({ key: 'k', action: 'a' })).toThrow(/limit: missing/);
    } finally {
      limiter.close();
    }
  });

  it('remembers nothing for groups the document does not define, nor for actions validation refuses', () => {
    const limiter = createLimiter({ clock: new ManualClock(0), policies: { defaults: { '*': { limit: 5, window: '1m' } }, groups: { pro: { weight: 2 } } } });
    try {
      const before = limiter.policies!.cachedResolutions;
      for (let i = 0; i < 500; i++) {
        expect(limiter.allow({ key: `u${i}`, action: 'a', group: `made-up-${i}` }).limit).toBe(5);
        expect(() => limiter.allow({ key: 'u', action: 'x'.repeat(300 + i), group: 'pro' })).toThrow(/^action: /);
      }
      expect(limiter.policies!.cachedResolutions - before).toBeLessThanOrEqual(1);
    } finally {
      limiter.close();
    }
  });

  it('refuses a group that is not a string', () => {
    const limiter = createLimiter({ clock: new ManualClock(0) });
    try {
      expect(() => limiter.allow({ key: 'k', limit: 1, windowMs: 1_000, group: 5 as unknown as string })).toThrow(/^group: /);
    } finally {
      limiter.close();
    }
  });

  it('examples/policies.yaml loads and resolves as its comments say', () => {
    const p = new Policies(parse(readFileSync(new URL('../../examples/policies.yaml', import.meta.url), 'utf8')));
    expect(said(p, 'someone', 'api.read')).toEqual({ limit: 600, windowMs: MIN });
    expect(said(p, 'someone', 'search', 'pro')).toEqual({ limit: 100, windowMs: 10_000, algorithm: 'sliding-window', weight: 5 });
    expect(said(p, 'acme-batch-importer', 'api.write')).toEqual({ limit: 10_000, windowMs: MIN, algorithm: 'token-bucket', burst: 4_000, weight: 1 });
    expect(said(p, 'abuse-suspect-42', 'login').weight).toBe(0.2);
  });
});
