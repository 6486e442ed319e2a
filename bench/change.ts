/**
 * The cluster through change, measured the way users meet it (no settle wait anywhere):
 *
 * - **Fresh cluster.** 3 `serve` processes started and used as soon as they see each other:
 *   the first pass over 100k keys (each once), then the warm rate of the same cluster, and
 *   the handoff pulls each pass made; and, after the join and the leave below, one more pass,
 *   warm, over 100k keys the cluster has never held — what new keys cost apart from cold code
 *   (every node stores each one, as owner or as replica), the part of the first pass no
 *   warm-up can remove.
 * - **Join and leave under load.** A RingLimitClient at concurrency 64 keeps the 3 nodes
 *   busy; a 4th node starts and joins; later it stops gracefully. Decisions per second
 *   through both, the worst second and the seconds below 50 % and 80 % of the steady rate
 *   of the cluster each change ends in (4 processes on 2 cores run slower than 3), client
 *   errors, and admissions past the limit (every key's limit of 5 is used up early, so a
 *   moved key decided from a fresh state would show here).
 */
import { fileURLToPath } from 'node:url';
import { ChaosCluster } from '../src/chaos/cluster.js';
import type { RingLimitClient } from '../src/node/client/client.js';
import { benchClient } from './contenders.js';
import { dip, MeteredLoop, type MeteredRun } from './metered-load.js';
import { Progress } from './progress.js';
import { fmtRate, median, table, type Log } from './util.js';

const NODES = 3;
const KEYS = 100_000;
const CONCURRENCY = 64;
const WARM_PASSES = 2;
/** Join/leave keys: a small limit over a day, used up within the first seconds. */
const CHANGE_LIMIT = 5;
const CHANGE_WINDOW_MS = 86_400_000;
const STEADY_BEFORE_S = 15;
/** Seconds after a change judged against the steady state that follows it. */
const CHANGE_WINDOW_S = 20;
const STEADY_AFTER_S = 8;

interface Pass {
  rate: number;
  pulls: number;
  errors: number;
}

interface ChangeRow {
  what: string;
  seconds: number[];
  steady: number;
  pulls: number;
}

async function pulls(cluster: ChaosCluster): Promise<number> {
  let total = 0;
  for (let i = 0; i < cluster.size; i++) {
    if (!cluster.isUp(i)) continue;
    const line = await cluster.stats(i, 5_000);
    const parsed = line === undefined ? undefined : (JSON.parse(line) as { stats?: { handoff?: { pulls?: number } } });
    total += parsed?.stats?.handoff?.pulls ?? 0;
  }
  return total;
}

/** Decisions answered so far, read once a second from the first traffic on (warm-up per second). */
const answered = { count: 0 };

/** Every key once, `CONCURRENCY` callers taking them in turn. */
async function pass(client: RingLimitClient, keys: readonly string[], cluster: ChaosCluster): Promise<Pass> {
  const pullsBefore = await pulls(cluster);
  let next = 0;
  let errors = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < keys.length) {
        const key = keys[next++]!;
        await client.allow({ key, action: 'fresh', limit: 1_000_000, windowMs: 60_000 }).catch(() => errors++);
        answered.count++;
      }
    }),
  );
  const rate = (1000 * keys.length) / (performance.now() - started);
  return { rate, pulls: (await pulls(cluster)) - pullsBefore, errors };
}

function changeTable(rows: readonly ChangeRow[]): string {
  return table(
    ['change', 'steady after (decisions/s)', 'worst second', 'seconds < 50 %', 'seconds < 80 %', `per second, first ${CHANGE_WINDOW_S} s`, 'pulls'],
    rows.map((r) => {
      const d = dip(r.seconds, r.steady);
      return [r.what, fmtRate(r.steady), `${fmtRate(d.worst)} (${Math.round(100 * d.worstShare)} %)`, String(d.below50), String(d.below80), r.seconds.map((s) => `${Math.round((100 * s) / r.steady)}`).join(' '), String(r.pulls)];
    }),
  );
}

export async function runChangeBench(log: Log): Promise<string> {
  const cliPath = fileURLToPath(new URL('../src/cli.js', import.meta.url));
  const progress = new Progress(log);
  progress.plan(35 + STEADY_BEFORE_S + 2 * (CHANGE_WINDOW_S + STEADY_AFTER_S + 2));
  const cluster = await ChaosCluster.start(NODES, { cliPath, harness: true });
  let client: RingLimitClient | undefined;
  try {
    await cluster.waitForMembers(NODES, 20_000);
    client = benchClient(cluster.grpcAddresses());
    const keys = Array.from({ length: KEYS }, (_, i) => `user-${i}`);
    // Decisions per second from the first traffic on, through the first pass and the warm ones: how soon fresh processes run at speed.
    const fromFirst: number[] = [];
    let lastCount = 0;
    const perSecond = setInterval(() => {
      fromFirst.push(answered.count - lastCount);
      lastCount = answered.count;
    }, 1_000);
    const first = await pass(client, keys, cluster);
    progress.step(10, `fresh ${NODES}-node cluster, first pass over ${KEYS} keys: ${fmtRate(first.rate)}, ${first.pulls} pulls, ${first.errors} errors`);
    const warm: Pass[] = [];
    for (let i = 0; i < WARM_PASSES; i++) {
      warm.push(await pass(client, keys, cluster));
      progress.step(10, `warm pass ${i + 1}: ${fmtRate(warm.at(-1)!.rate)}, ${warm.at(-1)!.pulls} pulls`);
    }
    const warmRate = Math.max(...warm.map((p) => p.rate));
    clearInterval(perSecond);
    const reached80 = fromFirst.findIndex((n) => n >= 0.8 * warmRate);

    const changeClient = client;
    const loop = new MeteredLoop(
      (key) => changeClient.allow({ key, action: 'change', limit: CHANGE_LIMIT, windowMs: CHANGE_WINDOW_MS }),
      keys,
      CHANGE_LIMIT,
      CONCURRENCY,
    );
    let run: MeteredRun | undefined;
    const rows: ChangeRow[] = [];
    try {
      await loop.waitSeconds(STEADY_BEFORE_S);
      const steadyBefore = median(loop.last(STEADY_BEFORE_S - 5));
      progress.step(STEADY_BEFORE_S, `steady, ${NODES} nodes: ${fmtRate(steadyBefore)}`);

      const change = async (what: string, act: () => Promise<unknown>): Promise<void> => {
        const pullsBefore = await pulls(cluster);
        const from = loop.seconds;
        await act();
        const waitFor = from + CHANGE_WINDOW_S + STEADY_AFTER_S - loop.seconds;
        if (waitFor > 0) await loop.waitSeconds(waitFor);
        const all = loop.last(loop.seconds - from);
        const seconds = all.slice(0, CHANGE_WINDOW_S);
        const steady = median(all.slice(CHANGE_WINDOW_S));
        rows.push({ what, seconds, steady, pulls: (await pulls(cluster)) - pullsBefore });
        const d = dip(seconds, steady);
        progress.step(CHANGE_WINDOW_S + STEADY_AFTER_S + 2, `${what}: worst second ${fmtRate(d.worst)} (${Math.round(100 * d.worstShare)} % of ${fmtRate(steady)}), ${d.below50} s < 50 %, ${d.below80} s < 80 %`);
      };
      let joined = -1;
      await change(`a 4th node joins ${NODES}`, async () => {
        joined = await cluster.add();
      });
      await change(`the 4th node leaves gracefully`, () => cluster.stopGracefully(joined));
      run = await loop.stop();
    } finally {
      if (run === undefined) await loop.stop();
    }
    progress.note(`join/leave run: ${run.errors} errors${run.firstError === undefined ? '' : ` (first: ${run.firstError})`}, ${run.overAdmitted} admitted past the limit, ${run.keysAtLimit} of ${KEYS} keys at their limit`);
    // Last, so that the join and the leave meet the cluster holding what they always did.
    const newKeys = await pass(client, keys.map((k) => `new-${k}`), cluster);
    progress.step(5, `warm cluster, a pass over ${KEYS} keys it never held: ${fmtRate(newKeys.rate)} (${Math.round((100 * newKeys.rate) / warmRate)} % of warm)`);

    return [
      '### Through change: a fresh cluster, a join and a leave under load (no settle wait)',
      '',
      `${NODES} \`serve\` processes and one RingLimitClient at concurrency ${CONCURRENCY}, all on this machine's 2 cores. Measured from the moment every node sees ${NODES} members.`,
      '',
      table(
        ['pass over 100k keys (each once)', 'decisions/s', 'of warm', 'handoff pulls', 'errors'],
        [
          ['first, on the fresh cluster', fmtRate(first.rate), `${Math.round((100 * first.rate) / warmRate)} %`, String(first.pulls), String(first.errors)],
          ...warm.map((p, i) => [`warm ${i + 1}`, fmtRate(p.rate), `${Math.round((100 * p.rate) / warmRate)} %`, String(p.pulls), String(p.errors)]),
          ['warm, over 100k keys never held (new keys, warm code; after the join and the leave)', fmtRate(newKeys.rate), `${Math.round((100 * newKeys.rate) / warmRate)} %`, String(newKeys.pulls), String(newKeys.errors)],
        ],
      ),
      '',
      `The first pass against the warm pass over keys never held: ${Math.round((100 * first.rate) / newKeys.rate)} % — what cold code costs; the rest of its distance from warm is what storing new keys costs on every holder.`,
      '',
      `From the first traffic on, decisions per second through these passes (whole seconds): ${fromFirst.map((n) => `${Math.round((100 * n) / warmRate)} %`).join(', ')} of the warm rate; ${reached80 < 0 ? 'no whole second reached 80 % of it' : `80 % of it first reached in second ${reached80 + 1}`}.`,
      '',
      `Join and leave: the same cluster, steady at ${fmtRate(median(run.perSecond.slice(5, STEADY_BEFORE_S)))} with ${NODES} nodes. Each change is judged against the median of the ${STEADY_AFTER_S} s that follow its first ${CHANGE_WINDOW_S} s (the cluster it ends in); the per-second column gives each second as % of that.`,
      '',
      changeTable(rows),
      '',
      `Through both: ${run.errors} client errors, ${run.overAdmitted} admissions past the limit (limit ${CHANGE_LIMIT} per key; ${run.keysAtLimit} of ${KEYS} keys reached it).`,
    ].join('\n');
  } finally {
    client?.close();
    await cluster.close();
  }
}
