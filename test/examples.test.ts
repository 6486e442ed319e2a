import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { builtCli } from './chaos/built-cli.js';

const run = promisify(execFile);

describe('examples/', () => {
  it('express-app.mjs: an Express app with the middleware and an embedded node answers with the headers, 429 past the limit, and a pro user its own 5 x', async () => {
    builtCli(); // the examples import the built package (dist/)
    const { stdout } = await run(process.execPath, ['examples/express-app.mjs', '--self-test'], { timeout: 30_000 });
    const result = JSON.parse(stdout.trim()) as { statuses: number[]; headers: { policy: string; ratelimit: string }; proStatus: number; proLimit: string; proRemaining: string };
    expect(result.statuses).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 429]);
    expect(result.headers.policy).toBe('"search";q=10;w=10');
    expect(result.headers.ratelimit).toMatch(/^"search";r=9;t=\d+$/);
    // A pro user (x-user, x-plan: pro, as the example's instructions send them) has a key of its own: allowed, 49 of 50 left.
    expect(result.proStatus).toBe(200);
    expect(result.proLimit).toBe('50');
    expect(result.proRemaining).toBe('49');
  }, 60_000);

  it('throttle.mjs: 20 jobs paced to 5 a second all run, over about 4 s', async () => {
    builtCli();
    const { stdout } = await run(process.execPath, ['examples/throttle.mjs'], { timeout: 30_000 });
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(20);
    expect(lines.every((l) => l.includes(' ran at '))).toBe(true);
    const last = Math.max(...lines.map((l) => Number(/\+(\d+) ms/.exec(l)![1])));
    expect(last).toBeGreaterThanOrEqual(3_500);
  }, 60_000);

  it('python/ringlimit_example.py, on a Python without grpcio, says how to get it (apt for /usr/bin/python3, pip for this one) and exits 1', (context) => {
    if (spawnSync('python3', ['--version'], { stdio: 'ignore' }).status !== 0) return context.skip('no python3 here');
    // -S: no site-packages, so grpcio is missing whatever this machine has installed.
    const result = spawnSync('python3', ['-S', 'examples/python/ringlimit_example.py', '127.0.0.1:1'], { encoding: 'utf8', timeout: 30_000 });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('needs grpcio');
    expect(result.stderr).toContain('apt-get install python3-grpcio');
    expect(result.stderr).toMatch(/-m pip install grpcio grpcio-tools/);
  });
});
