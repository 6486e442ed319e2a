import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { RingLimitClient } from '../node/api/client.js';
import type { FaultCommand } from './harness-mode.js';

const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));
const BOOT_TIMEOUT_MS = 20_000;

export interface NodeProcess {
  nodeId: string;
  child: ChildProcess;
  grpc: string;
  gossip: string;
  lines: Interface;
  stopped: boolean;
}

/** Every process the harness started, so that it can always stop them all (also on Ctrl-C or a failed run). */
export const started = new Set<ChildProcess>();

export function killEverything(): void {
  for (const child of started) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
  }
  started.clear();
}

/** Starts `ringlimit serve --harness` and waits for its ready line. Reuses ports on restart. */
export function startNodeProcess(nodeId: string, join: string[], ports?: { grpc: string; gossip: string }): Promise<NodeProcess> {
  const portArgs = ports === undefined ? [] : ['--port', ports.grpc.split(':')[1]!, '--gossip-port', ports.gossip.split(':')[1]!];
  const args = [CLI, 'serve', '--node-id', nodeId, '--harness', '--ready-json', '--gossip-preset', 'lan', ...portArgs, ...(join.length > 0 ? ['--join', join.join(',')] : [])];
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  started.add(child);
  child.once('exit', () => started.delete(child));
  child.stderr!.on('data', () => undefined);
  const lines = createInterface({ input: child.stdout! });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${nodeId} did not start within ${BOOT_TIMEOUT_MS} ms`));
    }, BOOT_TIMEOUT_MS);
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`${nodeId} exited with ${code} before it was ready`));
    };
    child.once('exit', onExit);
    lines.once('line', (line) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      const ready = JSON.parse(line) as { grpc: string; gossip: string };
      resolve({ nodeId, child, grpc: ready.grpc, gossip: ready.gossip, lines, stopped: false });
    });
  });
}

export function sendFault(node: NodeProcess, command: FaultCommand): void {
  if (node.child.stdin?.writable) node.child.stdin.write(`${JSON.stringify(command)}\n`);
}

export function signal(node: NodeProcess, sig: NodeJS.Signals): void {
  if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill(sig);
}

export async function waitExit(node: NodeProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (node.child.exitCode === null && node.child.signalCode === null && Date.now() < deadline) await sleep(20);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** How many members `node` sees, or -1 if it does not answer. */
export async function membersSeenBy(client: RingLimitClient, index: number): Promise<number> {
  try {
    return (await client.health(index)).members;
  } catch {
    return -1;
  }
}
