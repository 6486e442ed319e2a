/**
 * `npm run bench:compare -- [ref] [pairs]`: the node's request paths of this working tree
 * against another commit (default HEAD~1), in the same run. Both are built the same way;
 * each pair runs one process of each, in alternating order, and the report gives the
 * median of the per-pair ratios — the machine is shared and noisy, so only ratios from
 * neighbouring runs mean much. Appends the table to bench/RESULTS.md.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PathRates } from './node-paths.js';
import { fmtRate, median, table } from './util.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const CHILD = join(here, 'compare-child.js');
const PATHS: [keyof PathRates, string][] = [
  ['localAllow', '`node.allow()`, locally owned key (awaited)'],
  ['localNow', '`node.allowNow()`, locally owned key'],
  ['forwarded', '`node.allow()` forwarded to the owner (5,000 in flight)'],
  ['client', '`RingLimitClient` → node → owner (5,000 in flight)'],
];

const log = (line: string): void => console.log(`[compare ${new Date().toISOString().slice(11, 19)}] ${line}`);

function build(repo: string, outDir: string): void {
  execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', join(repo, 'tsconfig.build.json'), '--outDir', outDir, '--declaration', 'false', '--sourceMap', 'false'], { stdio: 'inherit' });
}

function measure(dist: string, label: string): PathRates {
  const child = spawnSync(process.execPath, [CHILD, dist, '3'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 300_000 });
  const line = child.stdout.trim().split('\n').pop() ?? '';
  if (child.status !== 0 || !line.startsWith('{')) throw new Error(`measuring ${label} failed (exit ${String(child.status)})`);
  return JSON.parse(line) as PathRates;
}

function main(): void {
  const [ref = 'HEAD~1', pairsArg = '5'] = process.argv.slice(2);
  const pairs = Number(pairsArg);
  const commit = execFileSync('git', ['-C', root, 'rev-parse', '--short', ref], { encoding: 'utf8' }).trim();
  const head = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const scratch = mkdtempSync(join(tmpdir(), 'ringlimit-compare-'));
  const worktree = join(scratch, 'tree');
  try {
    log(`building ${ref} (${commit}) and the working tree…`);
    execFileSync('git', ['-C', root, 'worktree', 'add', '--detach', worktree, commit], { stdio: 'ignore' });
    symlinkSync(join(root, 'node_modules'), join(worktree, 'node_modules'));
    build(worktree, join(worktree, 'dist'));
    const currentDist = join(root, '.bench-builds', 'current');
    build(root, currentDist);
    const before: PathRates[] = [];
    const after: PathRates[] = [];
    for (let i = 0; i < pairs; i++) {
      const order = i % 2 === 0 ? (['before', 'after'] as const) : (['after', 'before'] as const);
      for (const side of order) {
        (side === 'before' ? before : after).push(measure(side === 'before' ? join(worktree, 'dist') : currentDist, side));
      }
      log(`pair ${i + 1}/${pairs}: ${PATHS.map(([k]) => `${k} ${(after[i]![k] / before[i]![k]).toFixed(2)}×`).join(', ')}`);
    }
    const rows = PATHS.map(([k, name]) => [
      name,
      fmtRate(median(before.map((r) => r[k]))),
      fmtRate(median(after.map((r) => r[k]))),
      `${median(after.map((r, i) => r[k] / before[i]![k])).toFixed(2)}×`,
    ]);
    const section = [
      `## ${new Date().toISOString().slice(0, 10)} — node paths, ${commit} vs the working tree at ${head}`,
      '',
      `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}. Command: \`npm run bench:compare -- ${ref} ${pairs}\`.`,
      `${pairs} pairs of processes in alternating order; each process takes the median of 3 rounds; the ratio is the median of the per-pair ratios (after / before).`,
      '',
      table(['path', `before (${commit})`, 'after', 'after / before'], rows),
    ].join('\n');
    console.log(`\n${section}\n`);
    appendFileSync(join(root, 'bench', 'RESULTS.md'), `\n${section}\n`);
    log('appended to bench/RESULTS.md');
  } finally {
    spawnSync('git', ['-C', root, 'worktree', 'remove', '--force', worktree]);
    rmSync(scratch, { recursive: true, force: true });
  }
}

main();
