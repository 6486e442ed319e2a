/** The cluster bench's Python rows: the same nodes from another language (examples/python, grpcio). */
import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { fmtRate, table, type Log } from './util.js';

const PYTHON_EXAMPLE = fileURLToPath(new URL('../../examples/python/ringlimit_example.py', import.meta.url));

/** Unary Allow one at a time and AllowStream, against one node and through n0 of three nodes. */
export async function pythonClient(oneNode: string, threeNodes: string, log: Log): Promise<string> {
  const python = ['python3', '/usr/bin/python3'].find((p) => spawnSync(p, ['-c', 'import grpc'], { stdio: 'ignore' }).status === 0);
  if (python === undefined) return '_Python client: skipped (needs python3-grpcio, protobuf-compiler, protobuf-compiler-grpc)._';
  const rows: string[][] = [];
  for (const [name, address] of [['1 node', oneNode], ['3 nodes, asked through n0 (the run’s one key may live on another node)', threeNodes]] as const) {
    log(`Python client (grpcio), ${name}…`);
    const { stdout } = await promisify(execFile)(python, [PYTHON_EXAMPLE, address, '--calls', '5000', '--json'], { encoding: 'utf8', timeout: 120_000 });
    const r = JSON.parse(stdout.trim().split('\n').pop()!) as { unary: { p50_us: number }; stream: { per_second: number } };
    rows.push([name, `${r.unary.p50_us} µs`, fmtRate(r.stream.per_second)]);
  }
  return ['Python client (`examples/python`, grpcio, one thread):', '', table(['cluster', 'unary `Allow` p50', '`AllowStream` decisions/s'], rows)].join('\n');
}
