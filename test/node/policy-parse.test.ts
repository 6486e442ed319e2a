import fc from 'fast-check';
import { parseDocument } from 'yaml';
import { describe, expect, it } from 'vitest';
import { RingLimitError } from '../../src/common/errors.js';
import { Policies } from '../../src/limiter/policies.js';
import { loadPolicyText } from '../../src/node/sync/policy-loader.js';
import { parsePolicyDocument, parsePolicyText, policyBoundsDefaults } from '../../src/node/sync/policy-parse.js';

/** A document of `n` users, as YAML and as JSON. */
function usersDocument(n: number): { yaml: string; json: string } {
  const lines = ['defaults:', '  "*": { limit: 100, window: 1m }', 'groups:', '  pro: { weight: 5 }', 'users:'];
  const users: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    lines.push(`  user-${i}: { group: pro, weight: 2 }`);
    users[`user-${i}`] = { group: 'pro', weight: 2 };
  }
  return { yaml: `${lines.join('\n')}\n`, json: JSON.stringify({ defaults: { '*': { limit: 100, window: '1m' } }, groups: { pro: { weight: 5 } }, users }) };
}

/** The parse before issue 28 (the YAML library's own duplicate-key check, quadratic): accepted document, or the error's code. */
function oldParse(text: string): { document?: unknown; code?: string; message?: string } {
  try {
    const document = parseDocument(text, { uniqueKeys: true });
    const syntax = document.errors[0];
    if (syntax !== undefined) return { code: 'INVALID_ARGUMENT', message: syntax.message };
    const value: unknown = document.toJS({ maxAliasCount: 100 }) ?? {};
    new Policies(value);
    return { document: value };
  } catch (error) {
    return { code: error instanceof RingLimitError ? error.code : 'THROWN', message: (error as Error).message };
  }
}

function newParse(text: string): { document?: unknown; code?: string; message?: string } {
  try {
    return { document: parsePolicyText(text, 'doc').document };
  } catch (error) {
    return { code: error instanceof RingLimitError ? error.code : 'THROWN', message: (error as Error).message };
  }
}

describe('policy documents parse in linear time (issue 28, finding 7)', () => {
  it('50,000 users parse in linear time: JSON well under 5 s, YAML under 15 s (the quadratic duplicate check took 29 s)', () => {
    const { yaml, json } = usersDocument(50_000);
    // Unloaded: JSON 0.3 s, YAML 1.4 s (the YAML library's own pace, ~30 µs a user); YAML took 6 s at load average 10 on 2 cores.
    for (const [text, boundMs] of [[json, 5_000], [yaml, 15_000]] as const) {
      const started = performance.now();
      const policies = parsePolicyText(text, 'big');
      expect(performance.now() - started).toBeLessThan(boundMs);
      expect(policies.resolve('user-49999', 'search', undefined)).toMatchObject({ limit: 100, weight: 2 });
    }
  });

  it('a repeated key is refused in YAML and in JSON, with its line and column, at any depth', () => {
    const cases: [string, RegExp][] = [
      ['users:\n  a: {}\n  b: {}\n  a: {}\n', /^doc:4:3: Map keys must be unique/],
      ['{"users": {"a": {}, "b": {"weight": 1, "weight": 2}}}', /^doc:1:40: Map keys must be unique/],
      ['{"users": {"a": {}, "\\u0061": {}}}', /^doc:1:21: Map keys must be unique/],
      ['{\n "defaults": {},\n "defaults": {}\n}', /^doc:3:2: Map keys must be unique/],
    ];
    for (const [text, message] of cases) {
      expect(() => parsePolicyText(text, 'doc')).toThrow(message);
      expect(oldParse(text).code).toBe('INVALID_ARGUMENT');
    }
    // Equal keys in different mappings are not repeats.
    expect(parsePolicyDocument('{"users": {"a": {"weight": 1}, "b": {"weight": 2}}}', 'doc')).toEqual({ users: { a: { weight: 1 }, b: { weight: 2 } } });
  });

  it('bounds: bytes and users, each refused with RESOURCE_EXHAUSTED naming its option', async () => {
    const { json } = usersDocument(20);
    const tooBig = (() => { try { parsePolicyText(json, 'doc', { ...policyBoundsDefaults, maxBytes: 100 }); } catch (e) { return e as RingLimitError; } })();
    expect(tooBig).toMatchObject({ code: 'RESOURCE_EXHAUSTED', field: 'policyMaxBytes' });
    expect(tooBig?.message).toMatch(/at most 100 \(policyMaxBytes\)/);
    const tooMany = (() => { try { parsePolicyText(json, 'doc', { ...policyBoundsDefaults, maxUsers: 10 }); } catch (e) { return e as RingLimitError; } })();
    expect(tooMany).toMatchObject({ code: 'RESOURCE_EXHAUSTED', field: 'policyMaxUsers' });
    await expect(loadPolicyText(json, 'doc', { ...policyBoundsDefaults, maxUsers: 10 })).rejects.toMatchObject({ code: 'RESOURCE_EXHAUSTED', field: 'policyMaxUsers' });
  });

  it('loadPolicyText compiles in slices to the same policies, with the canonical text and its digest', async () => {
    const { yaml, json } = usersDocument(25_000);
    const loaded = await loadPolicyText(yaml, 'doc', policyBoundsDefaults);
    expect(loaded.text).toBe(json);
    expect(loaded.digest).toMatch(/^[0-9a-f]{16}$/);
    expect(loaded.policies.resolve('user-24999', 'x', undefined)).toEqual(parsePolicyText(json, 'doc').resolve('user-24999', 'x', undefined));
    // The plain document is made from the canonical text when asked for.
    expect(loaded.policies.document).toEqual(JSON.parse(json));
    // Users alike share a compiled level; users that differ do not.
    const mixed = await loadPolicyText('groups: { pro: { weight: 5 }, free: { weight: 1 } }\nusers:\n  a: { group: pro }\n  b: { group: pro }\n  c: { group: pro, weight: 3 }\n  d: { group: free }\n  e: { group: pro, actions: { x: { limit: 7 } } }\n', 'doc', policyBoundsDefaults);
    const weightOf = (key: string): number | undefined => mixed.policies.resolve(key, 'x', undefined).weight;
    expect(['a', 'b', 'c', 'd', 'e'].map(weightOf)).toEqual([5, 5, 3, 1, 5]);
    expect(mixed.policies.resolve('e', 'x', undefined).limit).toBe(7);
    expect(mixed.policies.resolve('a', 'x', undefined).limit).toBeUndefined();
    await expect(loadPolicyText('users:\n  a: { group: gold }\n', 'SetPolicies', policyBoundsDefaults)).rejects.toThrow(/^SetPolicies: users\.a\.group: must name a group/);
  });

  it('property: the new parser accepts and refuses the same small documents as the old one, with the same code and document', () => {
    const name = fc.constantFrom('a', 'b', 'c', 'pro', 'weight', 'limit');
    const rule = fc.record({ limit: fc.oneof(fc.integer({ min: -1, max: 5 }), fc.constant('x')), window: fc.constantFrom('1m', '10s', 0, 'bad') }, { requiredKeys: [] });
    const user = fc.record({ group: fc.constantFrom('pro', 'gold'), weight: fc.constantFrom(1, 2, 0), actions: fc.dictionary(name, rule, { maxKeys: 2 }) }, { requiredKeys: [] });
    const doc = fc.record({ defaults: fc.dictionary(name, rule, { maxKeys: 3 }), groups: fc.constant({ pro: { weight: 5 } }), users: fc.dictionary(name, user, { maxKeys: 4 }) }, { requiredKeys: [] });
    // A text: JSON (compact, spaced or indented) or YAML flow, with a key maybe repeated by splicing a copy of a member.
    const text = fc.tuple(doc, fc.constantFrom(0, 1, 2), fc.boolean(), fc.nat()).map(([d, style, repeat, at]) => {
      let t = JSON.stringify(d, null, style === 2 ? 2 : undefined);
      if (style === 1) t = t.replace(/,/g, ', ').replace(/:/g, ': ');
      if (repeat) {
        const members = [...t.matchAll(/"[a-z]+": ?(?:\{\}|[^,{}]+)/g)];
        const m = members[at % Math.max(1, members.length)];
        if (m !== undefined) t = `${t.slice(0, m.index! + m[0].length)}, ${m[0]}${t.slice(m.index! + m[0].length)}`;
      }
      return t;
    });
    const yamlBlock = doc.map((d) => {
      const lines: string[] = [];
      for (const [section, entries] of Object.entries(d)) {
        lines.push(`${section}:`);
        for (const [k, v] of Object.entries(entries as Record<string, unknown>)) lines.push(`  ${k}: ${JSON.stringify(v)}`);
      }
      return lines.join('\n');
    });
    const withDuplicateLine = fc.tuple(yamlBlock, fc.nat()).map(([t, at]) => {
      const lines = t.split('\n');
      const i = at % lines.length;
      return [...lines.slice(0, i + 1), lines[i]!, ...lines.slice(i + 1)].join('\n');
    });
    fc.assert(
      fc.property(fc.oneof(text, yamlBlock, withDuplicateLine), (t) => {
        const before = oldParse(t);
        const after = newParse(t);
        expect(after.code).toBe(before.code);
        if (before.code === undefined) expect(after.document).toEqual(before.document);
        if (before.message?.startsWith('Map keys must be unique') === true) expect(after.message).toMatch(/Map keys must be unique/);
      }),
      { numRuns: 400 },
    );
  });
});
