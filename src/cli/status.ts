import { parseArgs } from 'node:util';
import { RingLimitError } from '../common/errors.js';
import { LATENCY_BUCKETS_SECONDS, histogramQuantile } from '../common/latency.js';

export const STATUS_USAGE = `usage: ringlimit status --node HOST:PORT [options]

Prints the cluster at a glance, from one node's HTTP port (serve --http-port): members and
their states, each node's share of the keys, decisions/s, rejections/s, forwards/s and the
p99 decision latency (measured over --interval on every member that serves HTTP), keys
held and load factor.

  --node HOST:PORT   a node's HTTP address
  --token TOKEN      the API bearer token, when the nodes ask for one
  --interval T       how long the rates are measured over (default 1s; e.g. 500ms, 2s)
  --watch            refresh until interrupted
`;

interface ClusterInfo {
  nodeId: string;
  members: { nodeId: string; state: string; liveness: string; http?: string }[];
  ownershipShares: Record<string, number>;
  policyVersion: number;
  loadFactor: number;
}

/** Latency paths a node reports (ringlimit_decision_duration_seconds{path}). */
const PATHS = ['local', 'forwarded'] as const;
type LatencyPath = (typeof PATHS)[number];
/** The histogram's bounds, +Inf last. */
const BOUNDS = [...LATENCY_BUCKETS_SECONDS, Infinity];

interface Sample {
  decisions: number;
  rejected: number;
  forwards: number;
  keys: number;
  loadFactor: number;
  /** Cumulative sampled decisions per latency bucket (BOUNDS), by path. */
  latency: Record<LatencyPath, number[]>;
}

const BUCKET = /^ringlimit_decision_duration_seconds_bucket\{path="(local|forwarded)",le="([^"]+)"\}$/;

/** The sums of the metrics status reads, from one node's Prometheus exposition. */
export function sampleOf(exposition: string): Sample {
  const sample: Sample = { decisions: 0, rejected: 0, forwards: 0, keys: 0, loadFactor: 1, latency: { local: BOUNDS.map(() => 0), forwarded: BOUNDS.map(() => 0) } };
  for (const line of exposition.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    const name = line.slice(0, at);
    const value = Number(line.slice(at + 1));
    if (name.startsWith('ringlimit_decisions_total{')) {
      sample.decisions += value;
      if (name.includes('result="rejected"')) sample.rejected += value;
    } else if (name === 'ringlimit_forwards_total') sample.forwards = value;
    else if (name === 'ringlimit_keys') sample.keys = value;
    else if (name === 'ringlimit_load_factor') sample.loadFactor = value;
    else {
      const bucket = BUCKET.exec(name);
      const at = bucket === null ? -1 : BOUNDS.indexOf(bucket[2] === '+Inf' ? Infinity : Number(bucket[2]));
      if (at >= 0) sample.latency[bucket![1] as LatencyPath][at] = value;
    }
  }
  return sample;
}

/** Cumulative bucket counts gathered between two samples, summed over `paths` and over the pairs given. */
function latencyBetween(pairs: [Sample, Sample][], paths: readonly LatencyPath[]): number[] {
  const out = BOUNDS.map(() => 0);
  for (const [a, b] of pairs) for (const path of paths) for (let i = 0; i < out.length; i++) out[i]! += b.latency[path][i]! - a.latency[path][i]!;
  return out;
}

/** The p99 of what a histogram gathered, in milliseconds ("—" when it gathered nothing). */
function p99(cumulative: number[]): string {
  const seconds = histogramQuantile(0.99, BOUNDS, cumulative);
  if (seconds === undefined) return '—';
  const ms = seconds * 1000;
  return `${ms < 1 ? ms.toFixed(3) : ms.toFixed(ms < 100 ? 1 : 0)} ms`;
}

/** How long one HTTP call of status may take. */
const REQUEST_TIMEOUT_MS = 5_000;

/** What went wrong with a fetch, in words: the socket's error code and message (fetch itself only says "fetch failed"). */
export function fetchFailure(error: unknown): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) return `no answer within ${REQUEST_TIMEOUT_MS} ms`;
  const cause = error instanceof Error ? (error.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  const code = typeof cause?.code === 'string' ? cause.code : undefined;
  const reason: Record<string, string> = {
    ECONNREFUSED: 'connection refused: nothing listens there (is the node running, with --http-port?)',
    ENOTFOUND: 'no such host',
    EAI_AGAIN: 'the host name did not resolve (DNS)',
    ECONNRESET: 'the connection was reset',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
    ETIMEDOUT: 'the connection timed out',
    UND_ERR_SOCKET: 'the connection closed without an answer (TLS on that port? status speaks plain HTTP)',
  };
  if (code !== undefined) return `${code}, ${reason[code] ?? (typeof cause?.message === 'string' ? cause.message : 'failed')}`;
  if (typeof cause?.message === 'string') return cause.message;
  return error instanceof Error ? error.message : String(error);
}

async function get(url: string, token: string | undefined): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  } catch (error) {
    throw new RingLimitError('UNAVAILABLE', `GET ${url}: ${fetchFailure(error)}`);
  }
  if (!res.ok) {
    const hint = res.status === 401 ? ' (the node asks for an API token: --token)' : res.status === 404 ? ' (not a ringlimit HTTP port?)' : '';
    throw new RingLimitError('UNAVAILABLE', `GET ${url}: HTTP ${res.status}${hint}`);
  }
  return res;
}

const pad = (text: string, width: number): string => (text.length >= width ? text : text + ' '.repeat(width - text.length));
const rate = (n: number): string => (n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(n >= 100 ? 0 : 1));

/** One picture of the cluster: the view from `node`, and every HTTP member's rates over `intervalMs`. */
export async function renderStatus(node: string, token: string | undefined, intervalMs: number): Promise<string> {
  let info: ClusterInfo;
  try {
    info = (await (await get(`http://${node}/v1/cluster`, token)).json()) as ClusterInfo;
  } catch (error) {
    throw new RingLimitError('UNAVAILABLE', `cannot read the cluster from node ${node}: ${(error as Error).message}`);
  }
  const withHttp = info.members.filter((m) => m.http !== undefined && m.http !== '');
  const sampleAll = (): Promise<(Sample | undefined)[]> =>
    Promise.all(withHttp.map((m) => get(`http://${m.http!}/metrics`, token).then(async (r) => sampleOf(await r.text()), () => undefined)));
  const before = await sampleAll();
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, intervalMs));
  const after = await sampleAll();
  const seconds = (performance.now() - started) / 1000;
  const rows: string[][] = [['node', 'state', 'liveness', 'keys share', 'decisions/s', 'rejected/s', 'forwards/s', 'p99', 'keys', 'load']];
  let totalDecisions = 0;
  let totalRejected = 0;
  const measured: [Sample, Sample][] = [];
  for (const m of info.members) {
    const i = withHttp.indexOf(m);
    const a = i < 0 ? undefined : before[i];
    const b = i < 0 ? undefined : after[i];
    const share = info.ownershipShares[m.nodeId];
    const cells = [m.nodeId, m.state, m.liveness, share === undefined ? '—' : `${(share * 100).toFixed(1)} %`];
    if (a === undefined || b === undefined) cells.push('—', '—', '—', '—', '—', '—');
    else {
      measured.push([a, b]);
      const decisions = (b.decisions - a.decisions) / seconds;
      const rejected = (b.rejected - a.rejected) / seconds;
      totalDecisions += decisions;
      totalRejected += rejected;
      cells.push(rate(decisions), rate(rejected), rate((b.forwards - a.forwards) / seconds), p99(latencyBetween([[a, b]], PATHS)), String(b.keys), b.loadFactor.toFixed(2));
    }
    rows.push(cells);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)) + 2);
  const table = rows.map((r) => r.map((cell, c) => pad(cell, widths[c]!)).join('').trimEnd()).join('\n');
  return [
    `ringlimit cluster seen from ${info.nodeId} (${node}): ${info.members.length} members, policy version ${info.policyVersion}`,
    '',
    table,
    '',
    `in all: ${rate(totalDecisions)} decisions/s, ${rate(totalRejected)} rejected/s over ${seconds.toFixed(1)} s${withHttp.length < info.members.length ? ` (members without an HTTP port show —)` : ''}`,
    `p99 decision latency: ${p99(latencyBetween(measured, ['local']))} answered where asked, ${p99(latencyBetween(measured, ['forwarded']))} forwarded to the owner`,
  ].join('\n');
}

function durationMs(value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(value);
  if (match === null) throw new RingLimitError('INVALID_ARGUMENT', `--interval must be a duration such as 500ms or 2s, got ${JSON.stringify(value)}`);
  const ms = Number(match[1]) * (match[2] === 's' || match[2] === undefined ? 1_000 : 1);
  if (!(ms >= 100 && ms <= 60_000)) throw new RingLimitError('INVALID_ARGUMENT', '--interval must be from 100ms to 60s');
  return ms;
}

export async function runStatus(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, strict: true, allowPositionals: false, options: { node: { type: 'string' }, token: { type: 'string' }, interval: { type: 'string' }, watch: { type: 'boolean' } } });
  } catch (error) {
    throw new RingLimitError('INVALID_ARGUMENT', `${(error as Error).message}\n\n${STATUS_USAGE}`);
  }
  const v = parsed.values;
  if (v.node === undefined) throw new RingLimitError('INVALID_ARGUMENT', `--node is required\n\n${STATUS_USAGE}`);
  const intervalMs = durationMs(v.interval ?? '1s');
  if (v.watch !== true) {
    process.stdout.write(`${await renderStatus(v.node, v.token, intervalMs)}\n`);
    return 0;
  }
  let stop = false;
  process.once('SIGINT', () => (stop = true));
  while (!stop) {
    let text: string;
    try {
      text = await renderStatus(v.node, v.token, intervalMs);
    } catch (error) {
      text = `ringlimit status: ${(error as Error).message} (retrying)`;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
    process.stdout.write(`\x1b[2J\x1b[H${text}\n`);
  }
  return 0;
}
