import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { portToTry } from '../../bench/port-range.js';

/**
 * Processes a deployment test starts (nodes as a service manager or a pod would run them):
 * their output kept for failure messages, every one stopped by stopAll().
 */

export interface Started {
  readonly child: ChildProcess;
  readonly name: string;
  /** The last 20,000 characters of its stdout and stderr (and what stopProcess noted). */
  output(): string;
  /** Adds a line of the harness's own to output(). */
  note(line: string): void;
  /** Resolves with the exit code (null after a signal) once it has exited. */
  readonly exited: Promise<number | null>;
}

const started: Started[] = [];

export function startProcess(name: string, command: string, args: string[], env: NodeJS.ProcessEnv): Started {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', (error) => {
      keep(Buffer.from(String(error)));
      resolve(-1);
    });
  });
  const process: Started = { child, name, output: () => output, note: (line) => keep(Buffer.from(`\n${line}\n`)), exited };
  started.push(process);
  return process;
}

const running = (p: Started): boolean => p.child.exitCode === null && p.child.signalCode === null;

/** Sends `signal` and waits up to `timeoutMs` for the exit; SIGKILL after that. Resolves with the exit code, or undefined when it had to be killed. */
export async function stopProcess(p: Started, signal: NodeJS.Signals, timeoutMs: number): Promise<number | null | undefined> {
  if (!running(p)) return p.exited;
  p.child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const overran = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), timeoutMs);
  });
  const code = await Promise.race([p.exited, overran]);
  clearTimeout(timer);
  if (code === undefined && running(p)) {
    // Seen in CI: a node that logged "stopped" had not exited 30 s later, nor had its 15 s watchdog fired.
    p.note(`[harness] still running ${timeoutMs} ms after ${signal}; threads (tid state wchan): ${threadStates(p.child.pid)}`);
    p.child.kill('SIGKILL');
    await p.exited;
  }
  return code;
}

/** Each thread's state and kernel wait channel from /proc (Linux), to tell a blocked event loop from a process stuck exiting. */
function threadStates(pid: number | undefined): string {
  try {
    return readdirSync(`/proc/${pid}/task`)
      .map((tid) => {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
        const wchan = readFileSync(`/proc/${pid}/task/${tid}/wchan`, 'utf8');
        return `${tid} ${state} ${wchan || '-'}`;
      })
      .join(', ');
  } catch (error) {
    return `unreadable (${(error as Error).message})`;
  }
}

/** Stops every process started here and not yet stopped (SIGTERM, then SIGKILL after 10 s). */
export async function stopAll(): Promise<void> {
  await Promise.all(started.splice(0).map((p) => stopProcess(p, 'SIGTERM', 10_000)));
}

/**
 * Waits until `p` has printed `pattern` (e.g. serve's "serving" log line, printed once the node
 * has joined and its signal handlers are in place); rejects if it exits first or after `timeoutMs`.
 */
export function untilOutput(p: Started, pattern: RegExp, timeoutMs: number): Promise<void> {
  return until(`${p.name} printing ${String(pattern)}`, timeoutMs, async () => {
    if (pattern.test(p.output())) return true;
    if (!running(p)) throw new Error(`${p.name} exited (${String(p.child.exitCode ?? p.child.signalCode)}): ${p.output().slice(-2_000)}`);
    return undefined;
  }).then(() => undefined);
}

/** Polls `probe` every 100 ms until it returns a value, for at most `timeoutMs`; the error names `what` and the last failure. */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = 'no answer';
  for (let attempt = 0; Date.now() < deadline && attempt < 10 * 60 * 10; attempt++) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms (last: ${String(last)})`);
}

/** Whether TCP and UDP sockets bind to `host` at `port` now (0: any port). */
async function binds(host: string, port: number): Promise<number | undefined> {
  const tcp = await new Promise<number | undefined>((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, host, () => {
      const bound = (server.address() as { port: number }).port;
      server.close(() => resolve(bound));
    });
  });
  if (tcp === undefined) return undefined;
  const udp = await new Promise<boolean>((resolve) => {
    const socket = createSocket('udp4');
    socket.once('error', () => resolve(false));
    socket.bind(tcp, host, () => socket.close(() => resolve(true)));
  });
  return udp ? tcp : undefined;
}

/** A TCP and UDP port free right now on 127.0.0.1, outside the kernel's ephemeral range (callers bind it later). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await binds('127.0.0.1', portToTry());
    if (port !== undefined) return port;
  }
  throw new Error('no free port on 127.0.0.1 in 50 attempts');
}

/**
 * `count` ports free for TCP and UDP on every one of `hosts` (and on the wildcard address, so
 * no listener on 0.0.0.0 takes them), distinct from each other.
 */
export async function freePorts(count: number, hosts: readonly string[]): Promise<number[]> {
  const ports: number[] = [];
  for (let attempt = 0; ports.length < count && attempt < 50 * count; attempt++) {
    const port = await binds('0.0.0.0', portToTry());
    if (port === undefined || ports.includes(port)) continue;
    let everywhere = true;
    for (const host of hosts) if ((await binds(host, port)) === undefined) everywhere = false;
    if (everywhere) ports.push(port);
  }
  if (ports.length < count) throw new Error(`no ${count} free ports on ${hosts.join(', ')}`);
  return ports;
}

/**
 * Loopback addresses standing for separate machines or pods (127.0.0.2, 127.0.0.3, …), each
 * with the same ports, as real machines have; undefined where they cannot be bound (Linux binds
 * all of 127.0.0.0/8; macOS only 127.0.0.1 unless aliased).
 */
export async function loopbackMachines(count: number): Promise<string[] | undefined> {
  const hosts = Array.from({ length: count }, (_, i) => `127.0.0.${i + 2}`);
  for (const host of hosts) if ((await binds(host, 0)) === undefined) return undefined;
  return hosts;
}
