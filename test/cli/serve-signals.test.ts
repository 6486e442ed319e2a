import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createInterface } from 'node:readline';
import { freePort } from '../deployment/processes.js';
import { describe, expect, it } from 'vitest';
import { builtCli } from '../chaos/built-cli.js';
import { httpGet } from '../deployment/http-get.js';

/** A UDP port nobody answers on (bound and silent while the test runs). */
function silentSeed(): Promise<{ address: string; close: () => void }> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.bind(0, '127.0.0.1', () => resolve({ address: `127.0.0.1:${socket.address().port}`, close: () => socket.close() }));
  });
}

describe('ringlimit serve: a signal while the node starts', () => {
  it('a SIGTERM during the join (its seed never answers; it keeps trying) stops the node cleanly: exit code 0, "stopped", no watchdog', async () => {
    const seed = await silentSeed();
    const httpPort = await freePort();
    // No --join-timeout: the join waits out the test preset's 5 s, then the node would go on alone, retrying.
    const args = ['serve', '--node-id', 'sigterm-joiner', '--port', '0', '--gossip-port', '0', '--http-port', String(httpPort), '--join', seed.address, '--gossip-preset', 'test', '--cluster-name', `sigterm-${process.pid}`];
    const child = spawn(process.execPath, [builtCli(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: Record<string, unknown>[] = [];
    createInterface({ input: child.stderr! }).on('line', (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    try {
      // Its HTTP port answers while it joins (not ready): the node is inside its start.
      let readiness = '';
      for (let deadline = Date.now() + 20_000; readiness === '' && Date.now() < deadline; ) {
        readiness = await httpGet(`http://127.0.0.1:${httpPort}/readyz`).then(
          (answer) => `${answer.status} ${answer.body}`,
          () => '',
        );
        if (readiness === '') await new Promise((r) => setTimeout(r, 50));
      }
      expect(readiness).toMatch(/^503 .*joining/);
      const signalledAt = Date.now();
      child.kill('SIGTERM');
      expect(await exited).toEqual({ code: 0, signal: null });
      const messages = lines.map((l) => l['msg']);
      expect(messages).toContain('signal while starting: stopping as soon as the start ends (a second signal exits at once)');
      expect(messages).toContain('stopped');
      expect(messages).not.toContain('serving');
      expect(messages.filter((m) => typeof m === 'string' && /overran|^second signal/.test(m))).toEqual([]);
      for (const line of lines) expect(line['nodeId']).toBe('sigterm-joiner');
      // It stopped once its start ended (the join's 5 s at most), not when a watchdog would have (drainTimeoutMs + 10 s).
      expect(Date.now() - signalledAt).toBeLessThan(12_000);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      seed.close();
    }
  }, 60_000);
});
