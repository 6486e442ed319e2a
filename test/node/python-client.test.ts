import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RingLimitNode } from '../../src/node/node.js';
import { startCluster, stopAll } from './helpers.js';
import { pythonWithGrpc, skipWithoutPython } from './python.js';

const EXAMPLE = join(import.meta.dirname, '..', '..', 'examples', 'python', 'ringlimit_example.py');

const found = pythonWithGrpc();
// Outside CI a machine without them skips, saying why; CI installs them, so there it must run.
const skip = skipWithoutPython(found, 'python-client.test.ts');

describe.skipIf(skip)('a Python client (examples/python) on the same .proto', () => {
  let nodes: RingLimitNode[] = [];
  beforeAll(async () => {
    nodes = await startCluster(2);
  }, 30_000);
  afterAll(async () => {
    await stopAll(nodes);
  });

  it('unary Allow and AllowStream from grpcio answer exactly, and Members lists the owners', async () => {
    if ('missing' in found) throw new Error(`needs ${found.missing}`);
    // Asynchronously: the nodes answering it run in this process.
    const { stdout: output } = await promisify(execFile)(found.python, [EXAMPLE, nodes[0]!.grpcAddress!, '--calls', '400', '--json'], { encoding: 'utf8', timeout: 60_000 });
    const report = JSON.parse(output.trim().split('\n').pop()!) as {
      owners: string[];
      placement: string;
      unary: { calls: number; allowed: number; p50_us: number };
      stream: { calls: number; answered: number; allowed: number; errors: number };
    };
    expect(report.owners).toEqual(['n0', 'n1']);
    expect(report.placement).toBe('ringlimit-ring-v2');
    // Each run's key has limit calls / 2 in a fixed window: exactly half is allowed.
    expect(report.unary).toMatchObject({ calls: 400, allowed: 200 });
    expect(report.stream).toMatchObject({ calls: 400, answered: 400, allowed: 200, errors: 0 });
  }, 90_000);
});
