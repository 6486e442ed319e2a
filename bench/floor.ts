/**
 * `npm run bench -- floor`: the transport floor. What a decision round trip between two
 * Node.js processes on this machine costs at the least — a Map counter behind raw TCP and
 * behind a bare grpc-js bidi stream (floor-server.ts), called through the same
 * AdaptiveBatcher and defaults as RingLimitClient, with no validation, no limiter and no
 * protobuf — measured in the same run as rate-limiter-flexible + Redis and a 1-node
 * ringlimit. It tells which of the cluster targets any design over a socket can meet here,
 * and how much of ringlimit's cost is its own code rather than the transport.
 */
import * as grpc from '@grpc/grpc-js';
import { fork, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ChaosCluster } from '../src/chaos/cluster.js';
import { AdaptiveBatcher, type BatchQueue } from '../src/node/routing/adaptive-batcher.js';
import { clientDefaults } from '../src/node/client/client.js';
import { nodeDefaults } from '../src/node/options.js';
import { benchClient, clientContender, LIMIT, WINDOW_SECONDS } from './contenders.js';
import { encodeCalls, FrameSplitter, readAnswers } from './floor-wire.js';
import { FLOOR_METHOD } from './floor-server.js';
import { uniformKeys } from './keysets.js';
import { closedLoop, type LoopResult } from './load.js';
import { rateLimiterFlexibleRedis, startRedis, type Contender } from './peers/redis.js';
import { Progress } from './progress.js';
import { fmtRate, median, table, type Log } from './util.js';

const ROUNDS = 3;
const CONCURRENCY = [1, 64, 256] as const;
const MEASURE_MS = 1_500;
const WARMUP_MS = 500;
const SERVER_PATH = fileURLToPath(new URL('./floor-server.js', import.meta.url));
/** The bench's own build of the CLI (dist-bench), like the cluster bench. */
const CLI_PATH = fileURLToPath(new URL('../src/cli.js', import.meta.url));

interface Call {
  id: number;
  key: string;
  resolve: (allowed: boolean) => void;
}

/** Calls by id, batched like RingLimitClient; `write` sends one frame of calls. */
class FloorCalls {
  private readonly awaiting = new Map<number, Call>();
  private nextId = 1;
  private readonly batcher: AdaptiveBatcher<Call>;
  readonly queue: BatchQueue<Call>;
  private readonly settle = (id: number, allowed: boolean): void => {
    const call = this.awaiting.get(id);
    if (call === undefined) return;
    this.awaiting.delete(id);
    call.resolve(allowed);
  };

  constructor(write: (calls: Call[]) => void) {
    this.batcher = new AdaptiveBatcher(
      (_queue, calls) => {
        write(calls);
        return true;
      },
      { maxBatchSize: clientDefaults.maxBatchSize, maxFramesInFlight: clientDefaults.maxFramesInFlight, eagerBatchSize: clientDefaults.eagerBatchSize, batchWaitMs: 0 },
    );
    this.queue = this.batcher.queue('server');
  }

  allow(key: string): Promise<boolean> {
    return new Promise((resolve) => {
      const call: Call = { id: this.nextId++ >>> 0, key, resolve };
      this.awaiting.set(call.id, call);
      this.batcher.add(this.queue, call);
    });
  }

  answered(frame: Buffer, start: number): void {
    readAnswers(frame, start, this.settle);
    this.batcher.framesDone(this.queue, 1);
  }
}

function frameOf(calls: Call[], lengthPrefix: boolean): Buffer {
  return encodeCalls(
    calls.map((c) => c.key),
    calls.map((c) => c.id),
    lengthPrefix,
  );
}

async function startServer(kind: 'tcp' | 'grpc'): Promise<{ port: number; child: ChildProcess }> {
  const child = fork(SERVER_PATH, [kind], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`floor ${kind} server did not start within 10 s`)), 10_000);
    child.once('message', (message) => {
      clearTimeout(timer);
      resolve(Number(message));
    });
  });
  return { port, child };
}

async function tcpFloor(): Promise<Contender> {
  const { port, child } = await startServer('tcp');
  const socket = connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const calls = new FloorCalls((batch) => socket.write(frameOf(batch, true)));
  const splitter = new FrameSplitter((buffer, start) => calls.answered(buffer, start));
  socket.on('data', (chunk: Buffer) => splitter.push(chunk));
  return {
    name: 'floor: raw TCP, Map counter',
    short: 'raw TCP floor',
    call: (key) => calls.allow(key),
    close: async () => {
      socket.destroy();
      child.kill();
    },
  };
}

async function grpcFloor(): Promise<Contender> {
  const { port, child } = await startServer('grpc');
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const identity = (bytes: Buffer): Buffer => bytes;
  const stream = client.makeBidiStreamRequest(FLOOR_METHOD, identity, identity);
  stream.on('error', () => undefined);
  const calls = new FloorCalls((batch) => stream.write(frameOf(batch, false)));
  stream.on('data', (frame: Buffer) => calls.answered(frame, 0));
  return {
    name: 'floor: bare grpc-js bidi stream, Map counter',
    short: 'grpc-js floor',
    call: (key) => calls.allow(key),
    close: async () => {
      child.kill();
      client.close();
    },
  };
}

const fmtMs = (ms: number): string => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`);
const ratio = (value: number, base: number): string => `${(value / base).toFixed(2)}×`;

export async function runFloorBench(log: Log): Promise<string> {
  const progress = new Progress(log);
  const redis = await startRedis(log);
  if (redis === undefined) return '_Transport floor: skipped (needs redis-server for the comparison)._';
  const cluster = await ChaosCluster.start(1, { cliPath: CLI_PATH, harness: false });
  const list: Contender[] = [];
  try {
    await cluster.waitForMembers(1, 20_000);
    list.push(rateLimiterFlexibleRedis(redis.port, LIMIT, WINDOW_SECONDS));
    list.push(await tcpFloor());
    list.push(await grpcFloor());
    list.push(clientContender('ringlimit, 1 `serve` node, `RingLimitClient`', 'ringlimit 1 node', benchClient(cluster.grpcAddresses())));
    const keys = uniformKeys();
    progress.plan(ROUNDS * list.length * CONCURRENCY.length * (WARMUP_MS + MEASURE_MS) / 1000);
    const waitMs = nodeDefaults.handoffWindowMs + 1_000;
    progress.note(`waiting ${Math.round(waitMs / 1000)} s for the node's handoff window to close (steady state)…`);
    await new Promise((resolve) => setTimeout(resolve, waitMs));
    const results = new Map<string, Map<number, LoopResult[]>>(list.map((c) => [c.name, new Map(CONCURRENCY.map((n) => [n, []]))]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const concurrency of CONCURRENCY) {
        for (const c of list) {
          await closedLoop(c.call, keys.keys, concurrency, WARMUP_MS);
          const r = await closedLoop(c.call, keys.keys, concurrency, MEASURE_MS);
          results.get(c.name)!.get(concurrency)!.push(r);
          progress.step((WARMUP_MS + MEASURE_MS) / 1000, `round ${round + 1}/${ROUNDS}, concurrency ${concurrency}: ${c.name}: ${fmtRate(r.rate)}, p50 ${fmtMs(r.p50Ms)}, p99 ${fmtMs(r.p99Ms)}`);
        }
      }
    }
    const med = (name: string, concurrency: number, pick: (r: LoopResult) => number): number => median(results.get(name)!.get(concurrency)!.map(pick));
    const base = list[0]!.name;
    const rows = list.map((c) => {
      const p50 = med(c.name, 1, (r) => r.p50Ms);
      const rate64 = med(c.name, 64, (r) => r.rate);
      const p99 = med(c.name, 64, (r) => r.p99Ms);
      const rate256 = med(c.name, 256, (r) => r.rate);
      return [
        c.name,
        `${fmtMs(p50)} (${ratio(p50, med(base, 1, (r) => r.p50Ms))})`,
        `${fmtRate(rate64)} (${ratio(rate64, med(base, 64, (r) => r.rate))})`,
        `${fmtMs(p99)} (${ratio(p99, med(base, 64, (r) => r.p99Ms))})`,
        `${fmtRate(rate256)} (${ratio(rate256, med(base, 256, (r) => r.rate))})`,
      ];
    });
    return [
      '### Transport floor: the least a round trip between two Node.js processes costs here',
      '',
      `Closed loop, 100k uniform keys, medians of ${ROUNDS} rounds, contenders in turn. The floors are a Map counter in a second process behind raw TCP (length-prefixed frames) and behind one bare grpc-js bidi stream, called through the client's own AdaptiveBatcher with its defaults, without validation, limiter or protobuf. Ratios in brackets are against rate-limiter-flexible + Redis in the same run.`,
      '',
      table(['contender', 'p50 at concurrency 1', 'decisions/s at 64', 'p99 at 64', 'decisions/s at 256'], rows),
    ].join('\n');
  } finally {
    for (const c of list) await c.close();
    await cluster.close();
    await redis.stop();
  }
}
