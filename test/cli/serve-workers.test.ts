import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { takeWorkersFlag, workerArgs } from '../../src/cli/workers.js';
import { builtCli } from '../chaos/built-cli.js';
import { portToTry } from '../../bench/port-range.js';
import { httpGet } from '../deployment/http-get.js';

/** n consecutive TCP ports free right now on 127.0.0.1 (the first of them). */
async function freePortRun(n: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = portToTry(n);
    const free = await Promise.all(
      Array.from({ length: n }, (_, k) => new Promise<boolean>((resolve) => {
        const server = createServer();
        server.once('error', () => resolve(false));
        server.listen(first + k, '127.0.0.1', () => server.close(() => resolve(true)));
      })),
    );
    if (free.every(Boolean)) return first;
  }
  throw new Error('no run of free ports');
}

describe('ringlimit serve --workers', () => {
  it('parses N and auto, refuses the rest with a message naming the flag', () => {
    expect(takeWorkersFlag(['--port', '7000'])).toBeUndefined();
    expect(takeWorkersFlag(['--workers', '3', '--port', '7000'])).toEqual({ workers: 3, rest: ['--port', '7000'] });
    expect(takeWorkersFlag(['--workers=2'])).toEqual({ workers: 2, rest: [] });
    expect(takeWorkersFlag(['--workers', 'auto'])!.workers).toBeGreaterThanOrEqual(1);
    for (const bad of ['0', '65', 'two', '1.5']) expect(() => takeWorkersFlag(['--workers', bad])).toThrow(/--workers must be auto or a whole number from 1 to 64/);
    expect(() => takeWorkersFlag(['--workers'])).toThrow(/--workers needs/);
  });

  it("derives each worker's ports, node id and seeds from the flags given", () => {
    const args = ['--node-id', 'web', '--port', '7000', '--gossip-port', '0', '--http-port', '8080', '--join', 'seed:7946'];
    expect(workerArgs(args, 0, undefined)).toEqual(['--node-id', 'web-0', '--port', '7000', '--gossip-port', '0', '--http-port', '8080', '--join', 'seed:7946', '--ready-json']);
    const second = workerArgs(args, 2, '127.0.0.1:40000');
    expect(second).toEqual(expect.arrayContaining(['--port', '7002', '--http-port', '8082', '--gossip-port', '0', '--node-id', 'web-2', '--join', '127.0.0.1:40000,seed:7946']));
    expect(() => workerArgs(['--port', '65535'], 1, undefined)).toThrow(/--port \+ 1 must be a port/);
  });

  it('runs two members from one command, joined to each other; SIGTERM drains and stops both (exit 0)', { timeout: 60_000 }, async () => {
    const http = await freePortRun(2);
    const args = ['serve', '--workers', '2', '--node-id', `w${process.pid}`, '--port', '0', '--gossip-port', '0', '--http-port', String(http), '--gossip-preset', 'test', '--cluster-name', `workers-${process.pid}`, '--ready-json'];
    const child = spawn(process.execPath, [builtCli(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const ready: { nodeId: string; grpc: string }[] = [];
    const logs: string[] = [];
    createInterface({ input: child.stdout! }).on('line', (line) => ready.push(JSON.parse(line) as { nodeId: string; grpc: string }));
    createInterface({ input: child.stderr! }).on('line', (line) => logs.push(line));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      for (let deadline = Date.now() + 40_000; ready.length < 2 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
      expect(ready.map((r) => r.nodeId).sort()).toEqual([`w${process.pid}-0`, `w${process.pid}-1`]);
      let members = 0;
      for (let deadline = Date.now() + 20_000; members < 2 && Date.now() < deadline; ) {
        const answer = await httpGet(`http://127.0.0.1:${http + 1}/v1/cluster`);
        members = (JSON.parse(answer.body) as { members: unknown[] }).members.length;
        if (members < 2) await new Promise((r) => setTimeout(r, 100));
      }
      expect(members).toBe(2);
      expect((await httpGet(`http://127.0.0.1:${http}/readyz`)).status).toBe(200);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(logs.filter((l) => l.includes('"msg":"stopped"'))).toHaveLength(2);
  });
});
