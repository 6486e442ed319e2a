import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { RingLimitError } from '../common/errors.js';
import type { LoadSpec } from './loadgen.js';
import type { LoggedDecision } from './model.js';

const LOADGEN = fileURLToPath(new URL('./loadgen.js', import.meta.url));

export interface LoadProcess {
  /** Settles when the generator exits: at the end of its bounded run, or when stopped. */
  done: Promise<void>;
  stop(): void;
}

/** Runs the load generator in a child process and appends every decision it logs to `into`. */
export function startLoadProcess(spec: LoadSpec, into: LoggedDecision[]): LoadProcess {
  const child = spawn(process.execPath, [LOADGEN, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.startsWith('[')) {
      const [sentAtMs, key, outcome, latencyMs] = JSON.parse(line) as [number, number, number, number];
      into.push({ sentAtMs, key, outcome, latencyMs });
    }
  });
  const done = new Promise<void>((resolve, reject) => {
    child.once('exit', (code, signal) => (code === 0 ? resolve() : reject(new RingLimitError('INTERNAL', `load generator exited with ${signal ?? code}`))));
  });
  done.catch(() => undefined); // observed by whoever awaits it; a run that failed elsewhere must not crash on it
  return {
    done,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
