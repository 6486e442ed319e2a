/**
 * `serve --workers N`: one command running N members, one process (one JavaScript core) each.
 * 1 worker against 2 on this machine, through a RingLimitClient at concurrency 64 over 100k
 * uniform keys (closed loop), same run: decisions per second, p50 / p99, and CPU per decision
 * of the workers (all processes under the supervisor) and of the client.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { benchClient, clientContender } from './contenders.js';
import { uniformKeys } from './keysets.js';
import { closedLoop } from './load.js';
import { Progress } from './progress.js';
import { fmtRate, table, type Log } from './util.js';

const WORKER_COUNTS = [1, 2] as const;
const CONCURRENCY = 64;
const WARMUP_MS = 5_000;
const MEASURE_MS = 8_000;
const START_TIMEOUT_MS = 60_000;

/** CPU ms used so far by `pid` and every process below it (Linux /proc). */
function treeCpuMs(pid: number): number {
  let total = 0;
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    try {
      const fields = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ');
      total += (Number(fields[11]) + Number(fields[12])) * 10;
      for (const child of readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').split(' ').filter(Boolean)) stack.push(Number(child));
    } catch {
      // gone
    }
  }
  return total;
}

/** `serve --workers n`; resolves once every worker printed its ready line, with their gRPC addresses. */
function startServe(n: number, cliPath: string): Promise<{ child: ChildProcess; grpc: string[] }> {
  const child = spawn(process.execPath, [cliPath, 'serve', '--workers', String(n), '--port', '0', '--gossip-port', '0', '--gossip-preset', 'test', '--cluster-name', `bench-workers-${process.pid}-${n}`, '--log-level', 'warn', '--ready-json'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const grpc: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve --workers ${n} did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      grpc.push((JSON.parse(line) as { grpc: string }).grpc);
      if (grpc.length === n) {
        clearTimeout(timer);
        resolve({ child, grpc });
      }
    });
    child.once('exit', (code) => reject(new Error(`serve --workers ${n} exited (code ${code}) before it served`)));
  });
}

export async function runWorkersBench(log: Log): Promise<string> {
  const cliPath = fileURLToPath(new URL('../src/cli.js', import.meta.url));
  const progress = new Progress(log);
  progress.plan(WORKER_COUNTS.length * ((WARMUP_MS + MEASURE_MS) / 1000 + 5));
  const keys = uniformKeys().keys;
  const rows: string[][] = [];
  const rates: number[] = [];
  for (const n of WORKER_COUNTS) {
    const { child, grpc } = await startServe(n, cliPath);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const client = benchClient(grpc);
    const contender = clientContender(`serve --workers ${n}`, `w${n}`, client);
    try {
      await closedLoop(contender.call, keys, CONCURRENCY, WARMUP_MS);
      const serverBefore = treeCpuMs(child.pid!);
      const clientBefore = process.cpuUsage();
      const r = await closedLoop(contender.call, keys, CONCURRENCY, MEASURE_MS);
      const serverMs = treeCpuMs(child.pid!) - serverBefore;
      const clientUsage = process.cpuUsage(clientBefore);
      const decisions = (r.rate * MEASURE_MS) / 1000;
      const perDecision = (ms: number): string => `${((1000 * ms) / decisions).toFixed(1)} µs`;
      rates.push(r.rate);
      rows.push([`${n}`, fmtRate(r.rate), `${r.p50Ms.toFixed(2)} / ${r.p99Ms.toFixed(2)} ms`, perDecision(serverMs), perDecision((clientUsage.user + clientUsage.system) / 1000), `${Math.round((100 * serverMs) / MEASURE_MS)} %`]);
      progress.step((WARMUP_MS + MEASURE_MS) / 1000 + 5, `serve --workers ${n}: ${fmtRate(r.rate)} (${perDecision(serverMs)} server CPU per decision)`);
    } finally {
      await contender.close();
      child.kill('SIGTERM');
      await exited;
    }
  }
  return [
    '### One command, every core: `serve --workers N`',
    '',
    `RingLimitClient at concurrency ${CONCURRENCY}, 100k uniform keys, closed loop, ${MEASURE_MS / 1000} s after ${WARMUP_MS / 1000} s of warm-up; the client shares the machine's cores with the workers. 2 workers against 1: ${(rates[1]! / rates[0]!).toFixed(2)}×.`,
    '',
    table(['workers', 'decisions/s', 'p50 / p99', 'workers CPU per decision', 'client CPU per decision', 'workers CPU (of one core)'], rows),
  ].join('\n');
}
