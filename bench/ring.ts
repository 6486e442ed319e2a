/**
 * Ring benchmark: our src/ring against npm hashring@3.2.0 (lookup speed, balance,
 * key movement) plus the vnodes sweep behind ringDefaults.vnodesPerNode.
 * Standalone: npx tsc -p tsconfig.bench.json && node dist-bench/bench/ring.js
 */
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { seededRng } from '../src/common/rng.js';
import { Ring, ringDefaults } from '../src/ring/index.js';
import { buildPointTable } from '../src/ring/points.js';
import { resolveNodes } from '../src/ring/validate.js';
import type { ChangeTimes } from './ring-changes.js';

interface HashRingLike {
  get(key: string): string | undefined;
  /** The continuum: points ascending, each with its server. */
  ring: { value: number; server: string }[];
}
type HashRingConstructor = new (servers: string[]) => HashRingLike;

const HashRing = createRequire(import.meta.url)('hashring') as HashRingConstructor;

const KEY_COUNT = 100_000;
const RING_SPAN = 2 ** 32;
const SWEEP_CLUSTERS = 40;

const nodeIds = (count: number): string[] => Array.from({ length: count }, (_, i) => `node-${i + 1}`);
const ourRing = (count: number, vnodesPerNode?: number): Ring =>
  new Ring(nodeIds(count).map((nodeId) => ({ nodeId })), vnodesPerNode === undefined ? undefined : { vnodesPerNode });

function randomKeys(count: number, seed: number): string[] {
  const rng = seededRng(seed);
  return Array.from({ length: count }, () => `user:${rng.int(0x100000000).toString(16)}:${rng.int(1000)}`);
}

const pct = (fraction: number, digits = 2): string => `${(fraction * 100).toFixed(digits)} %`;
const signedPct = (fraction: number): string => `${fraction >= 0 ? '+' : ''}${(fraction * 100).toFixed(2)} %`;
const rate = (perSecond: number): string =>
  perSecond >= 1e6 ? `${(perSecond / 1e6).toFixed(2)} M/s` : `${(perSecond / 1e3).toFixed(0)} k/s`;

function median(values: number[]): number {
  const sorted = values.slice().sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Keeps lookups observable so the JIT cannot drop them. */
let sink = 0;

/** Median lookups/s over `passes` passes of all keys; `fresh` builds what one pass uses. */
function lookupsPerSecond<T>(keys: string[], passes: number, fresh: () => T, lookup: (target: T, key: string) => string | undefined): number {
  const rates: number[] = [];
  for (let pass = 0; pass < passes; pass++) {
    const target = fresh();
    const started = performance.now();
    for (const key of keys) sink += (lookup(target, key) as string).length;
    rates.push(keys.length / ((performance.now() - started) / 1000));
  }
  return median(rates);
}

function lookupSection(keys: string[], log: (line: string) => void): string {
  const rows: string[][] = [];
  for (const count of [3, 30, 1000]) {
    log(`ring: lookups at ${count} nodes`);
    const ours = ourRing(count);
    const replicas: string[] = [];
    const ownerRate = lookupsPerSecond(keys, 7, () => ours, (ring, key) => ring.owner(key));
    const replicaRate = lookupsPerSecond(keys, 7, () => ours, (ring, key) => {
      ring.ownersInto(key, 3, replicas);
      return replicas[0];
    });
    // A fresh HashRing per pass has an empty cache and every key of a pass is distinct,
    // so each get() misses and pays the md5 and the search, as with real traffic of many keys.
    const servers = nodeIds(count);
    const theirRate = lookupsPerSecond(keys, 3, () => new HashRing(servers), (ring, key) => ring.get(key));
    rows.push([`${count}`, rate(ownerRate), rate(replicaRate), rate(theirRate), `${(ownerRate / theirRate).toFixed(1)}×`]);
  }
  return table(['nodes', 'ours owner()', 'ours ownersInto(3)', 'hashring get() uncached', 'ours / hashring'], rows);
}

/** Fraction of the hash space each server owns, from a sorted point list. */
function arcShares(points: ArrayLike<number>, ownerOf: (index: number) => string, servers: string[]): number[] {
  const share = new Map(servers.map((server) => [server, 0]));
  for (let i = 0; i < points.length; i++) {
    const previous = i === 0 ? (points[points.length - 1] as number) - RING_SPAN : (points[i - 1] as number);
    const owner = ownerOf(i);
    share.set(owner, (share.get(owner) ?? 0) + ((points[i] as number) - previous) / RING_SPAN);
  }
  return servers.map((server) => share.get(server) ?? 0);
}

function deviationRange(values: number[], fair: number): string {
  const deviations = values.map((value) => value / fair - 1);
  return `${signedPct(Math.min(...deviations))} / ${signedPct(Math.max(...deviations))}`;
}

function keyCounts(keys: string[], servers: string[], ownerOf: (key: string) => string | undefined): number[] {
  const counts = new Map(servers.map((server) => [server, 0]));
  for (const key of keys) {
    const owner = ownerOf(key) as string;
    counts.set(owner, (counts.get(owner) ?? 0) + 1);
  }
  return servers.map((server) => counts.get(server) ?? 0);
}

function balanceSection(keys: string[], log: (line: string) => void): string {
  const rows: string[][] = [];
  for (const count of [3, 10, 30]) {
    log(`ring: balance at ${count} nodes`);
    const servers = nodeIds(count);
    const ours = ourRing(count);
    const shares = ours.shares();
    const theirs = new HashRing(servers);
    const theirPoints = theirs.ring.map((point) => point.value);
    rows.push([
      `${count}`,
      deviationRange(keyCounts(keys, servers, (key) => ours.owner(key)), keys.length / count),
      deviationRange(servers.map((server) => shares.get(server) ?? 0), 1 / count),
      deviationRange(keyCounts(keys, servers, (key) => theirs.get(key)), keys.length / count),
      deviationRange(arcShares(theirPoints, (i) => (theirs.ring[i] as { server: string }).server, servers), 1 / count),
    ]);
  }
  return table(
    ['nodes', 'ours: keys min / max vs fair', 'ours: ring share', 'hashring: keys', 'hashring: ring share'],
    rows,
  );
}

/** Share of keys that change owner, and share that move between two nodes present before and after. */
function movement(keys: string[], before: (key: string) => string | undefined, after: (key: string) => string | undefined, added: string): [number, number] {
  let moved = 0;
  let betweenOld = 0;
  for (const key of keys) {
    const now = after(key);
    if (now === before(key)) continue;
    moved++;
    if (now !== added) betweenOld++;
  }
  return [moved / keys.length, betweenOld / keys.length];
}

function movementSection(keys: string[], log: (line: string) => void): string {
  const rows: string[][] = [];
  // 6 -> 7 and 14 -> 15 are where hashring's floor() changes points per old server.
  for (const count of [3, 6, 14, 30]) {
    log(`ring: movement ${count} -> ${count + 1}`);
    const added = `node-${count + 1}`;
    const ours = ourRing(count);
    const oursGrown = ours.withMember({ nodeId: added });
    const [ourMoved, ourCross] = movement(keys, (k) => ours.owner(k), (k) => oursGrown.owner(k), added);
    const theirs = new HashRing(nodeIds(count));
    const theirsGrown = new HashRing(nodeIds(count + 1));
    const [theirMoved, theirCross] = movement(keys, (k) => theirs.get(k), (k) => theirsGrown.get(k), added);
    rows.push([`${count} → ${count + 1}`, pct(1 / (count + 1)), pct(ourMoved), pct(ourCross), pct(theirMoved), pct(theirCross)]);
  }
  return table(
    ['add one node', 'ideal moved', 'ours moved', 'ours between old nodes', 'hashring moved', 'hashring between old nodes'],
    rows,
  );
}

/** Worst ring-share deviation over random clusters: plain random points against the balanced layout. */
function sweepSection(log: (line: string) => void): string {
  const rows: string[][] = [];
  const rng = seededRng(42);
  const placements: [string, (ids: string[]) => number[]][] = [
    ['random points, 1024 per node', (ids) => plainShares(ids, 1024)],
    ['random points, 8192 per node (before)', (ids) => plainShares(ids, 8192)],
    ['balanced, 1024 base points per node (now)', (ids) => {
      const shares = new Ring(ids.map((nodeId) => ({ nodeId }))).shares();
      return ids.map((id) => shares.get(id) ?? 0);
    }],
  ];
  for (const [name, sharesOf] of placements) {
    log(`ring: balance sweep, ${name}`);
    const cells = [name];
    for (const count of [3, 10, 30, 100]) {
      let worst = 0;
      let over = 0;
      for (let cluster = 0; cluster < SWEEP_CLUSTERS; cluster++) {
        const ids = [...new Set(Array.from({ length: count }, () => `10.${rng.int(256)}.${rng.int(256)}.${rng.int(256)}:7946`))];
        const deviation = Math.max(...sharesOf(ids).map((share) => Math.abs(share * ids.length - 1)));
        worst = Math.max(worst, deviation);
        if (deviation > 0.05) over++;
      }
      cells.push(`${pct(worst, 1)} (${over}/${SWEEP_CLUSTERS})`);
    }
    rows.push(cells);
  }
  return table(['placement', '3 nodes: worst share deviation (clusters over ±5 %)', '10 nodes', '30 nodes', '100 nodes'], rows);
}

/** Exact shares of the plain random-point table (no balancing), in the order of `ids`. */
function plainShares(ids: string[], vnodesPerNode: number): number[] {
  const nodes = resolveNodes(ids.map((nodeId) => ({ nodeId })));
  const table = buildPointTable(nodes, vnodesPerNode);
  const sorted = nodes.map((node) => node.nodeId);
  const shares = arcShares(table.points, (i) => sorted[table.pointOwners[i] as number] as string, sorted);
  return ids.map((id) => shares[sorted.indexOf(id)] as number);
}

const addressIds = (count: number, prefix = 0): string[] => Array.from({ length: count }, (_, i) => `10.${prefix}.${i >> 8}.${i & 255}:7946`);

/**
 * At scale: what one ring costs, what a membership change costs (event-loop time of
 * withMembers, warmed up), how even the shares are, and how many keys a change moves.
 */
/** The changes of a ring of `count` members timed in a fresh process that holds only the ring (bench/ring-changes.ts). */
function changesInOwnProcess(count: number): ChangeTimes {
  const script = fileURLToPath(new URL('./ring-changes.js', import.meta.url));
  return JSON.parse(execFileSync(process.execPath, [script, String(count)], { encoding: 'utf8' })) as ChangeTimes;
}

function scaleSection(keys: string[], log: (line: string) => void): string {
  const rows: string[][] = [];
  const beforeRows: string[][] = [];
  for (const count of [10, 100, 1000, 4096]) {
    log(`ring: ${count} members`);
    const ids = addressIds(count);
    const members = ids.map((nodeId) => ({ nodeId }));
    const builds: number[] = [];
    let ring = new Ring(members);
    for (let i = 0; i < (count >= 1000 ? 2 : 5); i++) {
      const started = performance.now();
      ring = new Ring(members);
      builds.push(performance.now() - started);
    }
    const { changes, gcInside } = changesInOwnProcess(count);
    const ownWork = changes.map((ms, i) => ms - gcInside[i]!);
    log(`ring: ${count} members, changes ${changes.map((ms) => ms.toFixed(1)).join(' ')} ms; GC inside ${gcInside.map((ms) => ms.toFixed(1)).join(' ')} ms`);
    const deviation = Math.max(...[...ring.shares().values()].map((share) => Math.abs(share * count - 1)));
    // Movement: one member leaves (N → N-1), then one joins (N-1 → N).
    const shrunk = ring.withoutMember(ids[7]!);
    const grown = shrunk.withMember({ nodeId: '10.201.0.1:7946' });
    const [joinMoved, joinCross] = movement(keys, (k) => shrunk.owner(k), (k) => grown.owner(k), '10.201.0.1:7946');
    let leaveMoved = 0;
    for (const key of keys) if (ring.owner(key) !== shrunk.owner(key)) leaveMoved++;
    rows.push([
      `${count}`,
      `${ring.pointCount}`,
      `${(ring.byteSize() / 2 ** 20).toFixed(1)} MiB`,
      `${median(builds).toFixed(0)} ms`,
      `${median(changes).toFixed(1)} / ${Math.max(...changes).toFixed(1)} ms`,
      `${Math.max(...ownWork).toFixed(1)} ms`,
      pct(deviation),
      `${pct(joinMoved, 3)} (${(joinMoved * count).toFixed(2)}/N), ${pct(joinCross, 3)} between old`,
      `${pct(leaveMoved / keys.length, 3)} (${((leaveMoved / keys.length) * count).toFixed(2)}/N)`,
    ]);
    if (count <= 1000) {
      // The design before: every change built a table of 8192 random points per node from scratch.
      const nodes = resolveNodes(members);
      const started = performance.now();
      const plain = buildPointTable(nodes, 8192);
      const ms = performance.now() - started;
      const bytes = plain.points.byteLength + plain.pointOwners.byteLength + plain.bucketStarts.byteLength;
      beforeRows.push([`${count}`, `${plain.points.length}`, `${(bytes / 2 ** 20).toFixed(1)} MiB`, `${ms.toFixed(0)} ms`, pct(Math.max(...plainShares(ids, 8192).map((share) => Math.abs(share * count - 1))))]);
    }
  }
  return [
    table(['members', 'points in use', 'ring (tables, layout, index)', 'full build', 'one change: median / max', 'max without GC pauses', 'worst share vs fair', 'join: keys moved', 'leave: keys moved'], rows),
    '',
    'The design before (8192 random points per node, every change a full build), same run:',
    '',
    table(['members', 'points', 'tables + index', 'build = each change', 'worst share vs fair'], beforeRows),
  ].join('\n');
}

export async function runRingBench(log: (line: string) => void): Promise<string> {
  const started = performance.now();
  const keys = randomKeys(KEY_COUNT, 1);
  const lookups = lookupSection(keys, log);
  const balance = balanceSection(keys, log);
  const moves = movementSection(keys, log);
  const sweep = sweepSection(log);
  const scale = scaleSection(keys, log);
  log(`ring: done in ${((performance.now() - started) / 1000).toFixed(1)} s (checksum ${sink % 1000})`);
  return [
    '### Ring: src/ring vs npm hashring@3.2.0',
    '',
    `${KEY_COUNT / 1000}k random keys like \`user:3f9a0c1e:417\`, nodes \`node-1\`…\`node-N\`, default ${ringDefaults.vnodesPerNode} base points per node, balanced (ours), and hashring defaults (40 × 4 points per server). Lookups: median of passes over all keys. hashring gets a fresh ring per pass, so its LRU cache is empty and every key of the pass is distinct: each get() is uncached (md5 + search + cache insert).`,
    '',
    lookups,
    '',
    'Balance: deviation of the least and most loaded node from the fair share, over the keys (includes about ±1.7 % sampling noise per node at 30 nodes) and as exact share of the hash space.',
    '',
    balance,
    '',
    'Movement when one node joins, over the same keys. Keys moving between two old nodes are churn: ours are the few arcs balancing shifts (handed off like every moved key); hashring\'s come from its point counts.',
    '',
    moves,
    '',
    `Balance sweep: exact ring-share deviation, worst over ${SWEEP_CLUSTERS} random clusters (ids like \`10.1.2.3:7946\`) per cell.`,
    '',
    sweep,
    '',
    `At scale (issue 13), members named like \`10.0.3.17:7946\`: keys moved over ${KEY_COUNT / 1000}k keys, as a fraction and in units of 1/N (the ideal is 1/N); a change is a member joining or leaving, median and max of 20 after 4 to warm up, timed in a fresh process that holds only the ring (bench/ring-changes.ts): event-loop time, the garbage-collection pauses the change brings included; the next column leaves them out.`,
    '',
    scale,
  ].join('\n');
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  runRingBench((line) => console.log(`[bench ring] ${line}`)).then(
    (section) => console.log(`\n${section}`),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
