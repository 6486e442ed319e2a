/**
 * RSS of a `serve` node under attack (issue 28: "a node under the whole attack set returns to
 * its baseline RSS within a minute after it ends"). Starts `node dist/cli.js serve`, samples
 * VmRSS from /proc/<pid>/status every second, runs the intruders of src/chaos/intruders.ts
 * (slowReaders, floodPeerPorts) for ATTACK_S seconds, stops them, and reports the baseline
 * (before), the peak and the RSS 60 s after the end. Linux only.
 *
 *   npx tsc -p tsconfig.bench.json && node dist-bench/bench/attack-rss.js [attackSeconds] [-- serve flags…]
 *
 * Flags after `--` go to `serve` (e.g. `--gossip-key-file k --api-token-file t`); the
 * intruders send no token, so with an API token they measure refused callers.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { floodPeerPorts, slowReaders } from '../src/chaos/intruders.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dashes = process.argv.indexOf('--');
const attackS = Number(process.argv[2] !== undefined && process.argv[2] !== '--' ? process.argv[2] : 30);
const serveFlags = dashes === -1 ? [] : process.argv.slice(dashes + 1);
const AFTER_S = 60;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function rssMb(pid: number): number {
  const line = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return line === null ? Number.NaN : Number(line[1]) / 1024;
}

async function main(): Promise<void> {
  const port = 17_000 + Math.floor(Math.random() * 1_000);
  const node = spawn(process.execPath, [join(ROOT, 'dist', 'cli.js'), 'serve', '--node-id', 'rss', '--port', String(port), '--gossip-port', String(port + 1), ...serveFlags], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  node.stderr.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4_000)));
  const samples: { s: number; phase: string; mb: number }[] = [];
  let phase = 'baseline';
  const started = Date.now();
  const timer = setInterval(() => samples.push({ s: Math.round((Date.now() - started) / 1000), phase, mb: rssMb(node.pid!) }), 1_000);
  try {
    for (let i = 0; i < 100 && !log.includes('serving'); i++) await sleep(100);
    await sleep(10_000);
    phase = 'attack';
    const address = `127.0.0.1:${port}`;
    const context = { keyPrefix: 'k', keyCount: 1_000, action: 'attack', limit: 100 };
    const [answered, refused] = await Promise.all([slowReaders(address, 16, 50, 1_000, attackS * 1_000).catch(() => -1), floodPeerPorts([address], 'rss', context, attackS * 1_000).catch(() => -1)]);
    phase = 'after';
    const endedAt = samples.length;
    await sleep(AFTER_S * 1_000);
    const of = (p: string): number[] => samples.filter((x) => x.phase === p).map((x) => x.mb);
    const baseline = Math.min(...of('baseline').slice(-5));
    const peak = Math.max(...samples.map((x) => x.mb));
    const after = samples[samples.length - 1]!.mb;
    console.log(samples.map((x) => `${x.s}s ${x.phase} ${x.mb.toFixed(0)} MB`).join('\n'));
    console.log(`attack ${attackS} s (slowReaders answered ${answered} calls, floodPeerPorts refused ${refused} streams); samples after the end from #${endedAt}`);
    console.log(`RSS baseline ${baseline.toFixed(0)} MB, peak ${peak.toFixed(0)} MB, ${AFTER_S} s after the end ${after.toFixed(0)} MB (${after <= baseline * 1.2 ? 'back' : 'NOT back'} within 20 % of the baseline)`);
  } finally {
    clearInterval(timer);
    node.kill('SIGTERM');
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
