import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { RingLimitError } from '../common/errors.js';
import type { FaultCommand } from './harness-mode.js';
import { sleep } from './wait.js';

/** One `ringlimit serve` child process (with --harness for chaos runs). */
export interface NodeProcess {
  readonly nodeId: string;
  readonly child: ChildProcess;
  readonly grpc: string;
  readonly gossip: string;
  /** Its HTTP API, when it serves one. */
  readonly http: string | undefined;
  /** Its stdout after the ready line: the answers to fault commands. */
  readonly lines: Interface;
}

export interface NodeProcessSpec {
  cliPath: string;
  nodeId: string;
  /** Gossip addresses to join; none starts a cluster of one. */
  join: string[];
  gossipPreset: string;
  /** Fault commands on stdin (serve --harness). */
  harness: boolean;
  /** More `serve` flags. */
  serveArgs: string[];
  bootTimeoutMs: number;
  /** Ports to bind again (a restart); none picks free ports. */
  ports?: { grpc: string; gossip: string };
  /** Called as soon as the child exists, before it is ready, so that the caller can always kill it. */
  onSpawn(child: ChildProcess): void;
}

const STDERR_TAIL_CHARS = 2_000;
const portOf = (address: string) => address.slice(address.lastIndexOf(':') + 1);

/** Starts `ringlimit serve` (--harness when asked) and waits (bounded) for its ready line. */
export function startNodeProcess(spec: NodeProcessSpec): Promise<NodeProcess> {
  const { nodeId, ports, join } = spec;
  const args = [spec.cliPath, 'serve', '--node-id', nodeId, '--ready-json', '--gossip-preset', spec.gossipPreset];
  if (spec.harness) args.push('--harness');
  if (ports !== undefined) args.push('--port', portOf(ports.grpc), '--gossip-port', portOf(ports.gossip));
  if (join.length > 0) args.push('--join', join.join(','));
  args.push(...spec.serveArgs);
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  spec.onSpawn(child);
  // A fault command written to a node that just died must not crash the harness with EPIPE.
  child.stdin!.on('error', () => undefined);
  let stderrTail = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderrTail = (stderrTail + chunk.toString()).slice(-STDERR_TAIL_CHARS);
  });
  const lines = createInterface({ input: child.stdout! });
  return new Promise((resolve, reject) => {
    const fail = (message: string) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      child.kill('SIGKILL');
      reject(new RingLimitError('UNAVAILABLE', `${nodeId} ${message}${stderrTail === '' ? '' : `; stderr:\n${stderrTail}`}`));
    };
    const timer = setTimeout(() => fail(`did not start within ${spec.bootTimeoutMs} ms`), spec.bootTimeoutMs);
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => fail(`exited (${signal ?? code}) before it was ready`);
    child.once('exit', onExit);
    lines.once('line', (line) => {
      let ready: { grpc?: unknown; gossip?: unknown; http?: unknown };
      try {
        ready = JSON.parse(line) as typeof ready;
      } catch {
        ready = {};
      }
      if (typeof ready.grpc !== 'string' || typeof ready.gossip !== 'string') return fail(`printed no ready line but ${JSON.stringify(line)}`);
      clearTimeout(timer);
      child.off('exit', onExit);
      resolve({ nodeId, child, grpc: ready.grpc, gossip: ready.gossip, http: typeof ready.http === 'string' ? ready.http : undefined, lines });
    });
  });
}

export function isRunning(node: NodeProcess): boolean {
  return node.child.exitCode === null && node.child.signalCode === null;
}

export function sendFault(node: NodeProcess, command: FaultCommand): void {
  if (node.child.stdin?.writable) node.child.stdin.write(`${JSON.stringify(command)}\n`);
}

export function signal(node: NodeProcess, sig: NodeJS.Signals): void {
  if (isRunning(node)) node.child.kill(sig);
}

/** Whether the process exited within timeoutMs. */
export async function waitExit(node: NodeProcess, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isRunning(node) && Date.now() < deadline) await sleep(20);
  return !isRunning(node);
}
