import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { RingLimitError } from '../common/errors.js';

/** Workers one `serve` runs at most. */
export const MAX_WORKERS = 64;
/** How long a worker may take to print its ready line before the start is given up. */
const WORKER_START_TIMEOUT_MS = 120_000;

export const WORKERS_USAGE = `  --workers N|auto        run N full members from this one command (auto: one per core available),
                          each with its own ports (--port, --gossip-port and --http-port + k for
                          worker k; 0 stays 0), node id (<id>-k) and snapshot file, joined to each
                          other and to --join; SIGTERM or SIGINT drains and stops them together
`;

/** The value of `--workers` (or `--workers=`) in serve's args, and the args without it; undefined when absent. */
export function takeWorkersFlag(args: readonly string[]): { workers: number; rest: string[] } | undefined {
  const rest: string[] = [];
  let value: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--workers') {
      value = args[++i];
      if (value === undefined) throw new RingLimitError('INVALID_ARGUMENT', '--workers needs a number of workers or auto', 'workers');
    } else if (arg.startsWith('--workers=')) {
      value = arg.slice('--workers='.length);
    } else {
      rest.push(arg);
    }
  }
  if (value === undefined) return undefined;
  const workers = value === 'auto' ? availableParallelism() : Number(value);
  if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) {
    throw new RingLimitError('INVALID_ARGUMENT', `--workers must be auto or a whole number from 1 to ${MAX_WORKERS}, not ${JSON.stringify(value)}`, 'workers');
  }
  return { workers, rest };
}

/** The value of a `--flag value` pair in args, or undefined. */
function flagValue(args: readonly string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

/** args with `--flag value` set: replaced where it stands, or added at the end. */
function withFlag(args: readonly string[], flag: string, value: string): string[] {
  const out = [...args];
  const i = out.indexOf(flag);
  if (i >= 0) out[i + 1] = value;
  else out.push(flag, value);
  return out;
}

/** Port flag + k, except 0 (a free port each). */
function shiftedPort(args: readonly string[], flag: string, k: number): string | undefined {
  const value = flagValue(args, flag);
  if (value === undefined) return undefined;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port + k > 65_535) {
    throw new RingLimitError('INVALID_ARGUMENT', `${flag} ${value}: with --workers, ${flag} + ${k} must be a port`, flag.slice(2));
  }
  return port === 0 ? '0' : String(port + k);
}

/**
 * Worker k's serve args: ports + k, node id <id>-k (or a random one each), and, past the first,
 * the first worker's gossip address before the seeds given (so the workers form one cluster
 * even without --join).
 */
export function workerArgs(args: readonly string[], k: number, firstGossip: string | undefined): string[] {
  let out = [...args];
  for (const flag of ['--port', '--gossip-port', '--http-port']) {
    const shifted = shiftedPort(args, flag, k);
    if (shifted !== undefined) out = withFlag(out, flag, shifted);
  }
  const nodeId = flagValue(args, '--node-id');
  if (nodeId !== undefined) out = withFlag(out, '--node-id', `${nodeId}-${k}`);
  if (firstGossip !== undefined) {
    const seeds = flagValue(args, '--join');
    out = withFlag(out, '--join', seeds === undefined || seeds === '' ? firstGossip : `${firstGossip},${seeds}`);
  }
  // Each worker reports its addresses to the supervisor on stdout.
  if (!out.includes('--ready-json')) out.push('--ready-json');
  return out;
}

interface Worker {
  child: ChildProcess;
  exited: Promise<number>;
}

/** Starts worker k; resolves with its ready line (its addresses) once it serves. */
function startWorker(cliPath: string, args: string[], forwardReady: boolean): Promise<{ worker: Worker; ready: { gossip?: string } }> {
  const child = spawn(process.execPath, [cliPath, 'serve', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128))));
  const worker = { child, exited };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new RingLimitError('DEADLINE_EXCEEDED', `a worker did not start within ${WORKER_START_TIMEOUT_MS} ms`)), WORKER_START_TIMEOUT_MS);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(error);
    };
    let ready = false;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (forwardReady || ready) process.stdout.write(`${line}\n`);
      if (ready) return;
      try {
        const parsed = JSON.parse(line) as { gossip?: unknown };
        ready = true;
        clearTimeout(timer);
        resolve({ worker, ready: { gossip: typeof parsed.gossip === 'string' ? parsed.gossip : undefined } });
      } catch {
        // not the ready line
      }
    });
    void exited.then((code) => {
      if (!ready) fail(new RingLimitError('UNAVAILABLE', `a worker exited (code ${code}) before it served`));
    });
  });
}

/**
 * `serve --workers N`: N full members from one command, one process each (a member runs its
 * JavaScript on one core). The first starts on the given flags; the others join it. A signal
 * is passed to every worker (each drains: handoff, snapshot, leave); a worker that exits on
 * its own stops the others, so a supervisor (systemd, Kubernetes) restarts the whole. The
 * exit code is the highest of the workers'.
 */
export async function runWorkers(workers: number, args: string[]): Promise<number> {
  const cliPath = fileURLToPath(new URL('../cli.js', import.meta.url));
  const forwardReady = args.includes('--ready-json');
  const started: Worker[] = [];
  let stopping = false;
  const stopAll = (signal: NodeJS.Signals): void => {
    for (const w of started) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill(signal);
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    // A second signal is passed on too: each worker then exits at once.
    stopping = true;
    stopAll(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    let firstGossip: string | undefined;
    for (let k = 0; k < workers && !stopping; k++) {
      const { worker, ready } = await startWorker(cliPath, workerArgs(args, k, k === 0 ? undefined : firstGossip), forwardReady);
      started.push(worker);
      if (k === 0) firstGossip = ready.gossip;
    }
  } catch (error) {
    stopAll('SIGTERM');
    await Promise.all(started.map((w) => w.exited));
    throw error;
  } finally {
    if (stopping) stopAll('SIGTERM');
  }
  // One worker ending (on a signal or on its own) ends them all.
  await Promise.race(started.map((w) => w.exited));
  if (!stopping) {
    process.stderr.write(`${JSON.stringify({ level: 50, time: Date.now(), msg: 'a worker exited on its own: stopping the others' })}\n`);
    stopAll('SIGTERM');
  }
  const codes = await Promise.all(started.map((w) => w.exited));
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  return Math.max(...codes, stopping ? 0 : 1);
}
