import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { builtCli } from './chaos/built-cli.js';
import { freePort as freeTcpPort } from '../bench/peers/redis.js';
import { RedisProcess } from './redis/redis-server.js';

/**
 * A new user's first hour, scripted from the README itself: the commands of "As a cluster"
 * and "HTTP and metrics" are read from README.md and run as written, with their ports
 * moved to free ones, and then every TypeScript snippet that is a whole program, against
 * that cluster, each of which must exit by itself. A README edit that breaks the
 * walkthrough fails here.
 */

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const DEADLINE_MS = 60_000;

/** The first ```sh block after `heading`, one command per line (comments and blank lines dropped). */
function shellBlock(heading: string, containing: string): string[] {
  const from = README.indexOf(heading);
  expect(from, `README has a "${heading}" section`).toBeGreaterThanOrEqual(0);
  const blocks = README.slice(from).split('```sh\n').slice(1);
  const block = blocks.find((b) => b.slice(0, b.indexOf('```')).includes(containing));
  expect(block, `a sh block with "${containing}" after "${heading}"`).toBeDefined();
  return block!.slice(0, block!.indexOf('```')).split('\n').filter((l) => l.trim() !== '');
}

const withoutComment = (line: string): string => line.replace(/\s+#.*$/, '').trim();

/** A port free for TCP and UDP on 127.0.0.1 now, outside the kernel's ephemeral range (the snippets bind it later). */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freeTcpPort();
    if ([...ports.values()].includes(String(port))) continue;
    const udpFree = await new Promise<boolean>((resolve) => {
      const socket = createSocket('udp4');
      socket.once('error', () => resolve(false));
      socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error('no free port in 50 attempts');
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + DEADLINE_MS;
  let last: unknown;
  for (let i = 0; Date.now() < deadline && i < 600; i++) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not within ${DEADLINE_MS} ms (${String(last)})`);
}

/** The README's ```ts blocks, in order. */
function tsBlocks(): string[] {
  return README.split('```ts\n').slice(1).map((b) => b.slice(0, b.indexOf('```')));
}

/** Every port the README uses gets a free one, the same everywhere it appears. */
const ports = new Map<string, string>();
/** A README port as written: after a --port flag, an address, or a port option in code. */
const PORT = /(--(?:[a-z]+-)?port |127\.0\.0\.1:|localhost:|\b(?:port|gossipPort|httpPort): )(\d{4,5})/g;

async function reservePorts(lines: string[]): Promise<void> {
  for (const line of lines) for (const [, , port] of line.matchAll(PORT)) if (!ports.has(port!)) ports.set(port!, String(await freePort()));
}

const children: ChildProcess[] = [];
const output = new Map<ChildProcess, string>();
const dataDir = mkdtempSync(join(tmpdir(), 'ringlimit-walkthrough-'));
const moved = (line: string): string => line.replace(PORT, (_m, before: string, port: string) => `${before}${ports.get(port) ?? port}`).replace('./state', join(dataDir, 'state'));

function start(command: string, env: Record<string, string> = {}): ChildProcess {
  const words = command.split(/\s+/);
  const assignments = words.filter((w, i) => i < words.indexOf('node') && w.includes('='));
  const args = words.slice(words.indexOf('node') + 1);
  const child = spawn(process.execPath, args, {
    cwd: new URL('..', import.meta.url).pathname,
    env: { ...process.env, ...Object.fromEntries(assignments.map((a) => a.split('=') as [string, string])), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  output.set(child, '');
  const keep = (chunk: Buffer): void => void output.set(child, (output.get(child)! + chunk.toString()).slice(-20_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  children.push(child);
  return child;
}

async function run(command: string): Promise<string> {
  const child = start(command);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect(code, `${command}\n${output.get(child)}`).toBe(0);
  return output.get(child)!;
}

afterAll(async () => {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
          child.once('exit', () => {
            clearTimeout(force);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
  rmSync(dataDir, { recursive: true, force: true });
});

describe('the README walkthrough', () => {
  it('3 nodes as the README starts them, status, the Express app joined as a member with its headers and 429, /v1/allow and /metrics', async () => {
    builtCli();
    const cluster = shellBlock('## As a cluster', 'serve').map(withoutComment);
    await reservePorts([...cluster, ...shellBlock('**HTTP and metrics.**', 'curl').map(withoutComment), ...tsBlocks()]);

    const serves = cluster.filter((l) => / serve /.test(l)).map(moved);
    expect(serves).toHaveLength(3);
    for (const line of serves) start(line);
    const httpPort = /--http-port (\d+)/.exec(serves[0]!)![1]!;

    // status, as the README runs it, until it shows the 3 members active.
    const statusLine = moved(cluster.find((l) => / status /.test(l))!);
    const status = await until('3 active members in `ringlimit status`', async () => {
      const text = await run(statusLine);
      return /: 3 members,/.test(text) && (text.match(/ active +alive /g) ?? []).length === 3 ? text : undefined;
    });
    expect(status).toMatch(/p99 decision latency: /);

    // The Express app, joined as a 4th member; the README's curl goes to its port.
    const appLine = shellBlock('## As a cluster', 'serve').find((l) => l.includes('examples/express-app.mjs'))!;
    const appCurl = /curl -i (localhost:\d+)(\/\S+)/.exec(appLine)!;
    const appPort = String(await freePort());
    start(moved(withoutComment(appLine)), { PORT: appPort });
    const appUrl = `http://127.0.0.1:${appPort}${appCurl[2]}`;
    const first = await until('the Express app answering', async () => (await fetch(appUrl).catch(() => undefined)) ?? undefined);
    expect(first.status).toBe(200);
    expect(first.headers.get('ratelimit-policy')).toBe('"search";q=10;w=10');
    expect(first.headers.get('ratelimit')).toMatch(/^"search";r=9;t=\d+$/);
    const statuses = [first.status];
    for (let i = 0; i < 10; i++) statuses.push((await fetch(appUrl)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 429]);
    await until('4 members in `ringlimit status`', async () => (/: 4 members,/.test(await run(statusLine)) ? true : undefined));

    // "HTTP and metrics": the README's curl lines, sent as written.
    const curls = shellBlock('**HTTP and metrics.**', 'curl').filter((l) => l.startsWith('curl')).map((l) => moved(withoutComment(l)));
    const allowCurl = curls.find((l) => l.includes('/v1/allow'))!;
    const body = /-d '([^']+)'/.exec(allowCurl)![1]!;
    const allow = await fetch(`http://${/(localhost:\d+\/v1\/allow)/.exec(allowCurl)![1]}`, { method: 'POST', body });
    expect(allow.status).toBe(200);
    expect(await allow.json()).toMatchObject({ allowed: true, remaining: (JSON.parse(body) as { limit: number }).limit - 1 });
    const metricsCurl = curls.find((l) => l.includes('/metrics'))!;
    const metrics = await (await fetch(`http://${/(localhost:\d+\/metrics)/.exec(metricsCurl)![1]}`)).text();
    expect(metricsCurl).toContain(`localhost:${httpPort}/`);
    expect(metrics).toMatch(/^ringlimit_members 4$/m);
    expect(metrics).toMatch(/^ringlimit_decision_duration_seconds_count\{path="local"\} \d+$/m);
    const clusterCurl = curls.find((l) => l.includes('/v1/cluster'))!;
    const members = ((await (await fetch(`http://${/(localhost:\d+\/v1\/cluster)/.exec(clusterCurl)![1]}`)).json()) as { members: unknown[] }).members;
    expect(members).toHaveLength(4);
  }, 120_000);
  it('every TypeScript snippet that is a whole program (it begins with an import) runs as pasted, against that cluster and a redis-server, and exits by itself; the others say what they are a part of', async () => {
    const blocks = tsBlocks();
    const programs = blocks.filter((b) => b.startsWith('import '));
    const fragments = blocks.filter((b) => !b.startsWith('import '));
    for (const fragment of fragments) expect(fragment, 'a fragment begins with a comment naming what it is part of').toMatch(/^\/\/ /);
    expect(programs.length).toBeGreaterThanOrEqual(5);
    const redis = await RedisProcess.start();
    // Inside the repository, so that 'ringlimit' resolves to this package (dist/) and 'ioredis' to its node_modules.
    const scratch = join(new URL('..', import.meta.url).pathname, '.ringlimit-data');
    mkdirSync(scratch, { recursive: true });
    const dir = mkdtempSync(join(scratch, 'readme-snippets-'));
    try {
      const outputs: string[] = [];
      for (const [i, program] of programs.entries()) {
        const code = moved(program).replace('new Redis()', `new Redis(${redis.port}, '127.0.0.1')`);
        const js = ts.transpileModule(code, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
        const file = join(dir, `snippet-${i + 1}.mjs`);
        writeFileSync(file, js);
        const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        const exit = await new Promise<number | null>((resolve) => child.once('exit', resolve));
        clearTimeout(timer);
        expect(exit, `snippet ${i + 1} exits 0 by itself within 30 s:\n${program}\n${out}`).toBe(0);
        outputs.push(out);
      }
      const client = programs.findIndex((p) => p.includes('new RingLimitClient'));
      expect(outputs[client]).toMatch(/^true \d+$/m); // 99, or less after the README's curl took from user-42's upload
      const embedded = programs.findIndex((p) => p.includes('createNode('));
      expect(outputs[embedded]).toMatch(/^99$/m);
      expect(outputs[embedded]).toMatch(/^true [4-9]$/m); // it joined the README's cluster
      const onRedis = programs.findIndex((p) => p.includes('redisStore'));
      expect(outputs[onRedis]).toContain('true 99');
    } finally {
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
