import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { builtCli } from './chaos/built-cli.js';

describe('ringlimit serve logs', () => {
  it('writes JSON lines with levels on stderr (serving, draining, stopped), at the level asked; --ready-json stays alone on stdout', async () => {
    const cli = builtCli();
    const child = spawn(process.execPath, [cli, 'serve', '--node-id', 'logtest', '--port', '0', '--gossip-port', '0', '--ready-json', '--log-level', 'info', '--gossip-preset', 'test'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: Record<string, unknown>[] = [];
    createInterface({ input: child.stderr! }).on('line', (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
    const ready = await new Promise<Record<string, unknown>>((resolve) => createInterface({ input: child.stdout! }).once('line', (line) => resolve(JSON.parse(line) as Record<string, unknown>)));
    expect(ready['nodeId']).toBe('logtest');
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const messages = lines.map((l) => l['msg']);
    expect(messages).toContain('serving');
    expect(messages).toContain('draining and leaving (a second signal exits at once)');
    expect(messages).toContain('stopped');
    for (const line of lines) {
      expect(line['nodeId']).toBe('logtest');
      expect(line['level']).toBeGreaterThanOrEqual(30); // info: no debug lines
    }
  }, 60_000);
});
