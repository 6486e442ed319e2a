/**
 * `npm run bench`: runs every benchmark, prints the tables, and appends them with date,
 * machine and command to bench/RESULTS.md. Not part of `npm test`.
 */
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runLimiterBench } from './limiter.js';
import { runChangeBench } from './change.js';
import { runClusterBench } from './cluster.js';
import { runGossipScaleBench } from './gossip-scale.js';
import { runHandoffBench } from './handoff.js';
import { runLeasesBench } from './leases.js';
import { runFloorBench } from './floor.js';
import { runNodeBench } from './node.js';
import { runPoliciesBench } from './policies.js';
import { runPolicyParseBench } from './policy-parse.js';
import { runCapacityBench } from './capacity.js';
import { runRedisBench } from './redis.js';
import { runWorkersBench } from './workers.js';

type Section = (log: (line: string) => void) => Promise<string>;

async function optionalSection(modulePath: string, exportName: string): Promise<Section | undefined> {
  try {
    const mod = (await import(modulePath)) as Record<string, unknown>;
    const fn = mod[exportName];
    return typeof fn === 'function' ? (fn as Section) : undefined;
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const log = (line: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);
  const sections: [string, Section | undefined][] = [
    ['limiter', runLimiterBench],
    ['policies', runPoliciesBench],
    ['policy-parse', runPolicyParseBench],
    ['ring', await optionalSection('./ring.js', 'runRingBench')],
    ['gossip', runGossipScaleBench],
    ['handoff', runHandoffBench],
    ['node', runNodeBench],
    ['cluster', runClusterBench],
    ['leases', runLeasesBench],
    ['change', runChangeBench],
    ['workers', runWorkersBench],
    ['floor', runFloorBench],
    ['capacity', runCapacityBench],
    ['redis', runRedisBench],
  ];
  const parts: string[] = [];
  for (const [name, run] of sections) {
    if (only.length > 0 && !only.includes(name)) continue;
    if (run === undefined) continue;
    log(`== ${name}`);
    const section = await run(log);
    console.log(`\n${section}\n`);
    parts.push(section);
  }
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const header = [
    `## ${new Date().toISOString().slice(0, 10)} — ${only.length > 0 ? only.join(', ') : 'all'}`,
    '',
    `Machine: ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}. Command: \`npm run bench${only.length > 0 ? ` -- ${only.join(' ')}` : ''}\`.`,
    'Shared, noisy machine: read the ratios, not the absolute figures.',
    '',
  ].join('\n');
  const here = dirname(fileURLToPath(import.meta.url));
  const results = join(here, '..', '..', 'bench', 'RESULTS.md');
  if (!existsSync(results)) writeFileSync(results, '# Benchmark results\n\nNewest last. Produced by `npm run bench`.\n');
  appendFileSync(results, `\n${header}\n${parts.join('\n\n')}\n`);
  log(`appended to ${results}`);
  process.exit(0); // rate-limiter-flexible leaves a timer per key behind
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
