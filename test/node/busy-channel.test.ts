import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { rateLimiterClientConstructor } from '../../src/node/api/proto.js';
import { builtCli } from '../chaos/built-cli.js';
import { pythonWithGrpc, skipWithoutPython } from './python.js';

/**
 * A busy, well-behaved caller: one gRPC channel with thousands of unary calls started at
 * once, as every gRPC stack multiplexes them on one connection. The node advertises how many
 * calls a connection may have open (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS) and the caller's
 * own stack queues the rest: slowed, never refused. Against real `serve` processes with
 * their default bounds, from grpc-js (this process) and from Python's grpcio.
 */

const CONCURRENT_ALLOW = join(import.meta.dirname, 'fixtures', 'concurrent_allow.py');
const CALLS = 2_000;
const KEYS = 10;
const LIMIT = 50;
/** Generous: the machine is shared with other test files; a slow answer is fine, an error is not. */
const DEADLINE_MS = 120_000;

const python = pythonWithGrpc();
const skipPython = skipWithoutPython(python, 'busy-channel.test.ts (its grpcio half)');

interface Served {
  nodeId: string;
  grpc: string;
  gossip: string;
  http: string;
  child: ChildProcess;
}

let runs = 0;
const served: Served[] = [];

/** `ringlimit serve` as an operator starts it (the built CLI), default caller bounds, on free ports. */
async function serve(nodeId: string, clusterName: string, join?: string): Promise<Served> {
  const args = ['serve', '--node-id', nodeId, '--host', '127.0.0.1', '--port', '0', '--gossip-port', '0', '--http-port', '0', '--cluster-name', clusterName, '--gossip-preset', 'test', '--log-level', 'warn', '--ready-json'];
  if (join !== undefined) args.push('--join', join);
  const child = spawn(process.execPath, [builtCli(), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = await new Promise<Omit<Served, 'child'>>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`serve ${nodeId} exited with ${String(code)} before it was ready`)));
    createInterface({ input: child.stdout! }).once('line', (line) => resolve(JSON.parse(line) as Omit<Served, 'child'>));
  });
  const node = { ...ready, child };
  served.push(node);
  return node;
}

async function stopServed(): Promise<void> {
  await Promise.all(
    served.splice(0).map(
      ({ child }) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}

type Unary = (req: object, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { allowed: boolean; owners?: unknown[] }) => void) => void;
type RateLimiterClient = grpc.Client & { allow: Unary; members: Unary };

interface Outcome {
  calls: number;
  errors: number;
  errorKinds: Record<string, number>;
  allowed: number;
  allowedPerKey: Record<string, number>;
}

/** `calls` unary Allow started at once on ONE grpc-js channel, over KEYS keys of limit LIMIT in a fixed window. */
async function grpcJsBurst(address: string, prefix: string): Promise<Outcome> {
  const Client = rateLimiterClientConstructor();
  const client = new Client(address, grpc.credentials.createInsecure()) as unknown as RateLimiterClient;
  const outcome: Outcome = { calls: CALLS, errors: 0, errorKinds: {}, allowed: 0, allowedPerKey: {} };
  try {
    await Promise.all(
      Array.from(
        { length: CALLS },
        (_, i) =>
          new Promise<void>((resolve) => {
            const key = `${prefix}-${i % KEYS}`;
            client.allow({ key, action: 'concurrent', limit: LIMIT, windowMs: 600_000, algorithm: 'fixed-window' }, { deadline: Date.now() + DEADLINE_MS }, (error, answer) => {
              if (error !== null) {
                outcome.errors++;
                const kind = `${grpc.status[error.code]}: ${error.details}`;
                outcome.errorKinds[kind] = (outcome.errorKinds[kind] ?? 0) + 1;
              } else if (answer?.allowed === true) {
                outcome.allowed++;
                outcome.allowedPerKey[key] = (outcome.allowedPerKey[key] ?? 0) + 1;
              }
              resolve();
            });
          }),
      ),
    );
  } finally {
    client.close();
  }
  return outcome;
}

/** The same from ONE grpcio channel (grpc.aio), in a Python process. */
async function grpcioBurst(address: string, prefix: string): Promise<Outcome> {
  if ('missing' in python) throw new Error(`needs ${python.missing}`);
  const { stdout } = await promisify(execFile)(python.python, [CONCURRENT_ALLOW, address, '--calls', String(CALLS), '--keys', String(KEYS), '--limit', String(LIMIT), '--prefix', prefix, '--deadline', String(DEADLINE_MS / 1000)], {
    encoding: 'utf8',
    timeout: DEADLINE_MS + 30_000,
  });
  return JSON.parse(stdout.trim().split('\n').pop()!) as Outcome;
}

/** Exactly LIMIT allowed per key, no error: the caller was slowed (queued in its stack), never refused. */
function expectExact(outcome: Outcome, prefix: string): void {
  expect(outcome.errorKinds).toEqual({});
  expect(outcome.errors).toBe(0);
  expect(outcome.allowed).toBe(KEYS * LIMIT);
  expect(outcome.allowedPerKey).toEqual(Object.fromEntries(Array.from({ length: KEYS }, (_, k) => [`${prefix}-${k}`, LIMIT])));
}

/**
 * Never more than LIMIT per key, no error; at most `underShare` of the calls due refused. A
 * burst like this on two shared cores can make a member late enough to answer gossip probes
 * that another suspects it: while it is suspected, the split rule has each owner spend its
 * keys at 1 / share (docs/reliability.md), so a few calls are refused that a whole cluster would
 * have allowed — the documented price of a split, never an admission past the limit.
 */
function expectNoOverAdmission(outcome: Outcome, prefix: string, underShare: number): void {
  expect(outcome.errorKinds).toEqual({});
  expect(outcome.errors).toBe(0);
  for (let k = 0; k < KEYS; k++) expect(outcome.allowedPerKey[`${prefix}-${k}`] ?? 0).toBeLessThanOrEqual(LIMIT);
  expect(outcome.allowed).toBeGreaterThanOrEqual(Math.floor((1 - underShare) * KEYS * LIMIT));
}

/** The node's value of one counter (no labels beyond `labels`), from its /metrics. */
async function metric(node: Served, name: string): Promise<number> {
  const text = await (await fetch(`http://${node.http}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

/** The node's count of calls it refused, from its /metrics. */
async function refusedCalls(node: Served): Promise<number> {
  const text = await (await fetch(`http://${node.http}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('ringlimit_caller_refusals_total{reason="calls"}'));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

async function owners(address: string): Promise<number> {
  const Client = rateLimiterClientConstructor();
  const client = new Client(address, grpc.credentials.createInsecure()) as unknown as RateLimiterClient;
  try {
    return await new Promise((resolve) => client.members({}, { deadline: Date.now() + 5_000 }, (error, answer) => resolve(error === null ? (answer?.owners?.length ?? 0) : 0)));
  } finally {
    client.close();
  }
}

async function eventually(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('a busy caller multiplexing 2,000 calls on one channel is slowed, never refused', () => {
  afterEach(stopServed);

  it('one default `serve` node: 2,000 concurrent unary Allow from one grpc-js channel, exact, 0 errors', async () => {
    const node = await serve('busy1', `busy-${process.pid}-${++runs}`);
    const prefix = `js-${process.pid}-${runs}`;
    expectExact(await grpcJsBurst(node.grpc, prefix), prefix);
    expect(await refusedCalls(node)).toBe(0);
  }, 180_000);

  it.skipIf(skipPython)('one default `serve` node: 2,000 concurrent unary Allow from one grpcio channel, exact, 0 errors', async () => {
    const node = await serve('busy1', `busy-${process.pid}-${++runs}`);
    const prefix = `py-${process.pid}-${runs}`;
    expectExact(await grpcioBurst(node.grpc, prefix), prefix);
    expect(await refusedCalls(node)).toBe(0);
  }, 180_000);

  it('three default `serve` nodes: a grpc-js channel and a grpcio channel, 2,000 calls each at once to two nodes, exact, 0 errors', async () => {
    const cluster = `busy-${process.pid}-${++runs}`;
    const first = await serve('n1', cluster);
    const rest = [await serve('n2', cluster, first.gossip), await serve('n3', cluster, first.gossip)];
    const nodes = [first, ...rest];
    // Every node sees the three owners before the calls: each key is then decided by one owner.
    for (const node of nodes) await eventually(async () => (await owners(node.grpc)) === 3, 30_000, `${node.nodeId} to see 3 owners`);
    const js = `js3-${process.pid}-${runs}`;
    const py = `py3-${process.pid}-${runs}`;
    // Without Python (outside CI only), the grpc-js half runs alone.
    const suspicionsBefore = (await Promise.all(nodes.map((n) => metric(n, 'ringlimit_gossip_suspicions_total')))).reduce((a, b) => a + b, 0);
    const [fromJs, fromPy] = await Promise.all([grpcJsBurst(first.grpc, js), skipPython ? undefined : grpcioBurst(rest[0]!.grpc, py)]);
    const suspicions = (await Promise.all(nodes.map((n) => metric(n, 'ringlimit_gossip_suspicions_total')))).reduce((a, b) => a + b, 0) - suspicionsBefore;
    // Exact unless the burst got a member suspected (then the split rule's under-admission, bounded).
    // A member alone on its side of a suspicion spends at least a third of each key (share 1/3 of three).
    const check = (outcome: Outcome, prefix: string): void => (suspicions === 0 ? expectExact(outcome, prefix) : expectNoOverAdmission(outcome, prefix, 2 / 3));
    check(fromJs, js);
    if (fromPy !== undefined) check(fromPy, py);
    for (const node of nodes) expect(await refusedCalls(node)).toBe(0);
  }, 240_000);
});
