import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../../src/cli/serve.js';
import { RingLimitClient } from '../../src/node/api/client.js';
import type { RingLimitNode } from '../../src/node/node.js';
import { readPolicyFile, watchPolicyFile } from '../../src/node/policy-file.js';
import { startCluster, stopAll, waitFor } from './helpers.js';

const POLICIES = `
defaults:
  "*": { limit: 4, window: 1h }
groups:
  pro: { weight: 3 }
`;

describe('policies on a cluster', () => {
  let nodes: RingLimitNode[] = [];
  let client: RingLimitClient | undefined;
  afterEach(async () => {
    client?.close();
    client = undefined;
    await stopAll(nodes);
  });

  it('requests that name only key and action (and group) get the policies’ limits, exactly, through every node and the client', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ringlimit-policies-'));
    writeFileSync(join(dir, 'p.yaml'), POLICIES);
    const policies = readPolicyFile(join(dir, 'p.yaml'));
    nodes = await startCluster(3, { policies, replicas: 1 });
    let allowed = 0;
    for (let i = 0; i < 9; i++) if ((await nodes[i % 3]!.allow({ key: 'u1', action: 'export' })).allowed) allowed++;
    expect(allowed).toBe(4);
    client = new RingLimitClient({ nodes: nodes.map((n) => n.grpcAddress!) });
    const answers = [];
    for (let i = 0; i < 12; i++) answers.push(await client.allow({ key: 'u2', action: 'export', group: 'pro' }));
    expect(answers.filter((a) => a.allowed).length).toBe(12);
    expect(answers[0]!.limit).toBe(12);
    expect((await client.allow({ key: 'u2', action: 'export', group: 'pro' })).allowed).toBe(false);
  }, 30_000);

  it('node policy handles: allowNow answers for keys decided here, allow() forwards the rest, and counts are exact', async () => {
    nodes = await startCluster(2, { replicas: 1, handoffWindowMs: 0 });
    const handle = nodes[0]!.policy({ action: 'upload', limit: 3, windowMs: 3_600_000 });
    const local = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7'].find((k) => nodes[0]!.ownerOf(k, 'upload') === 'n0')!;
    const remote = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7'].find((k) => nodes[0]!.ownerOf(k, 'upload') === 'n1')!;
    expect(handle.allowNow(local)).toMatchObject({ allowed: true, limit: 3, remaining: 2 });
    expect(handle.allowNow(remote)).toBeUndefined();
    const results = [];
    for (let i = 0; i < 4; i++) results.push((await handle.allow(remote)).allowed);
    expect(results).toEqual([true, true, true, false]);
    // The owner saw the same key: a plain request there finds it used up.
    expect((await nodes[1]!.allow({ key: remote, action: 'upload', limit: 3, windowMs: 3_600_000 })).allowed).toBe(false);
    await expect(handle.allow('')).rejects.toThrow(/^key: /);
  }, 30_000);
});

describe('policy files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ringlimit-policy-file-'));

  it('name the file and the path of a mistake, or the line and column of a syntax error', () => {
    writeFileSync(join(dir, 'bad.yaml'), 'groups:\n  pro:\n    actions:\n      search: { limit: -1 }\n');
    expect(() => readPolicyFile(join(dir, 'bad.yaml'))).toThrow(`${join(dir, 'bad.yaml')}: groups.pro.actions.search.limit: must be a positive integer, got -1`);
    writeFileSync(join(dir, 'syntax.yaml'), 'defaults:\n  "*": { limit: 4, window: 1h\n');
    expect(() => readPolicyFile(join(dir, 'syntax.yaml'))).toThrow(new RegExp(`^${join(dir, 'syntax.yaml')}:\\d+:\\d+: `));
    writeFileSync(join(dir, 'p.json'), JSON.stringify({ defaults: { '*': { limit: 2, window: 1000 } } }));
    expect(readPolicyFile(join(dir, 'p.json')).resolve('k', 'a', undefined)).toMatchObject({ limit: 2, windowMs: 1_000 });
    expect(() => readPolicyFile(join(dir, 'missing.yaml'))).toThrow(/cannot read the policy file/);
    expect(() => parseServeArgs(['--policies', join(dir, 'bad.yaml')])).toThrow(/groups\.pro\.actions\.search\.limit/);
    expect(parseServeArgs(['--policies', join(dir, 'p.json')]).policyFile).toBe(join(dir, 'p.json'));
  });

  it('are watched: a change (also written by rename, as editors do) is taken, a bad edit is reported and changes nothing', async () => {
    const path = join(dir, 'watched.yaml');
    writeFileSync(path, 'defaults:\n  "*": { limit: 1, window: 1m }\n');
    const limits: number[] = [];
    const errors: string[] = [];
    const watch = watchPolicyFile(path, 20, (p) => limits.push(p.resolve('k', 'a', undefined).limit!), (e) => errors.push(e.message));
    try {
      writeFileSync(`${path}.tmp`, 'defaults:\n  "*": { limit: 22, window: 1m }\n');
      renameSync(`${path}.tmp`, path);
      await waitFor(() => limits.length === 1, 5_000, 'the change');
      writeFileSync(path, 'defaults:\n  "*": { limit: zero }\n');
      await waitFor(() => errors.length === 1, 5_000, 'the bad edit');
      expect(limits).toEqual([22]);
      expect(errors[0]).toMatch(/defaults\.\*\.limit: must be a positive integer/);
    } finally {
      watch.close();
    }
  });
});
