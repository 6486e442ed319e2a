import { readFileSync } from 'node:fs';
import { runChaosCli } from './chaos.js';
import { runClusterDemo } from './demo-cluster.js';
import { runLimiterDemo } from './demo-limiter.js';
import { SERVE_USAGE, runServe } from './serve.js';
import { STATUS_USAGE, runStatus } from './status.js';
import { WORKERS_USAGE, runWorkers, takeWorkersFlag } from './workers.js';

const USAGE = `usage: ringlimit <command>

commands:
  serve        run a cluster node (see ringlimit serve --help)
  status       print the cluster at a glance from a node's HTTP port (see ringlimit status --help)
  demo         start a local 3-node cluster and show it limiting traffic exactly, through a node failure
  demo-local   show the in-process limiter: weighted users and throttling
  chaos        run a local multi-process cluster under faults and measure its accuracy
  help         print this message
  --version    print the version
`;

/** The package's version, from its package.json (two levels up from src/cli/ and from dist/cli/). */
export function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof manifest.version === 'string' ? manifest.version : 'unknown';
}

export async function runCli(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case 'serve':
      if (rest.includes('--help') || rest.includes('-h')) {
        process.stdout.write(SERVE_USAGE + WORKERS_USAGE);
        return 0;
      }
      return serve(rest);
    case 'status':
      if (rest.includes('--help') || rest.includes('-h')) {
        process.stdout.write(STATUS_USAGE);
        return 0;
      }
      return runStatus(rest);
    case 'demo':
      return runClusterDemo(rest);
    case 'chaos':
      return runChaosCli(rest);
    case 'demo-local':
      return runLimiterDemo(rest);
    case '--version':
    case '-v':
    case 'version':
      process.stdout.write(`${packageVersion()}\n`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`ringlimit: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}

/** serve, or with --workers N (N > 1) a supervisor of N serve processes. */
function serve(args: string[]): Promise<number> {
  const workers = takeWorkersFlag(args);
  if (workers === undefined) return runServe(args);
  return workers.workers === 1 ? runServe(workers.rest) : runWorkers(workers.workers, workers.rest);
}
