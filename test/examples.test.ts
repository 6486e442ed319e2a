import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { builtCli } from './chaos/built-cli.js';

const run = promisify(execFile);

describe('examples/', () => {
  it('express-app.mjs: an Express app with the middleware and an embedded node answers with the headers, 429 past the limit, 5 x for pro users', async () => {
    builtCli(); // the examples import the built package (dist/)
    const { stdout } = await run(process.execPath, ['examples/express-app.mjs', '--self-test'], { timeout: 30_000 });
    const result = JSON.parse(stdout.trim()) as { statuses: number[]; headers: { policy: string; ratelimit: string }; proLimit: string };
    expect(result.statuses).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 429]);
    expect(result.headers.policy).toBe('"search";q=10;w=10');
    expect(result.headers.ratelimit).toMatch(/^"search";r=9;t=\d+$/);
    expect(result.proLimit).toBe('50');
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
});
