import { afterEach, describe, expect, it } from 'vitest';
import { createNode, type RingLimitNode } from '../../src/node/node.js';
import { startCluster, stopAll, waitFor } from './helpers.js';
import { LATENCY_SAMPLE_EVERY } from '../../src/common/latency.js';

const TOKEN = 'http-token-0123456789abcdef';

async function call(node: RingLimitNode, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://${node.httpAddress!}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe('the HTTP API', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
    nodes = [];
  });

  it('decides like the gRPC API, and refuses bad input with 400 { code, field, message } and no change', async () => {
    const node = await createNode({ httpPort: 0 });
    nodes.push(node);
    const req = { key: 'u1', action: 'export', limit: 2, windowMs: 60_000 };
    const first = await call(node, 'POST', '/v1/allow', req);
    expect(first).toMatchObject({ status: 200, json: { allowed: true, limit: 2, remaining: 1, retryAfterMs: 0, waitMs: 0 } });
    await call(node, 'POST', '/v1/allow', req);
    const third = await call(node, 'POST', '/v1/allow', req);
    expect(third.status).toBe(200);
    expect(third.json['allowed']).toBe(false);
    expect(third.json['retryAfterMs']).toBeGreaterThan(0);

    expect(await call(node, 'POST', '/v1/allow', { ...req, key: 'u2', limit: -1 })).toMatchObject({ status: 400, json: { code: 'INVALID_ARGUMENT', field: 'limit' } });
    expect(await call(node, 'POST', '/v1/allow', { ...req, limt: 5 })).toMatchObject({ status: 400, json: { code: 'INVALID_ARGUMENT', field: 'limt' } });
    expect(await call(node, 'POST', '/v1/allow', '{"key": ')).toMatchObject({ status: 400, json: { code: 'INVALID_ARGUMENT', field: 'body' } });
    expect(await call(node, 'POST', '/v1/allow', [1, 2])).toMatchObject({ status: 400, json: { field: 'body' } });
    expect((await call(node, 'POST', '/v1/allow', { ...req, key: 'x'.repeat(3 * 1024 * 1024) })).status).toBe(413);
    expect((await call(node, 'GET', '/v1/allow')).status).toBe(405);
    expect((await call(node, 'GET', '/v1/nothing')).status).toBe(404);
    expect(node.stats().store.keys).toBe(1); // only u1: every refused request changed nothing

    const batch = await call(node, 'POST', '/v1/allow-batch', { requests: [{ ...req, key: 'b1' }, { ...req, key: 'b2', windowMs: 0 }, { ...req, key: 'b3', extra: 1 }] });
    expect(batch.status).toBe(200);
    const results = batch.json['results'] as Record<string, Record<string, unknown>>[];
    expect(results[0]!['decision']).toMatchObject({ allowed: true, remaining: 1 });
    expect(results[1]!['error']).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'windowMs' });
    expect(results[2]!['error']).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'extra' });
    expect((await call(node, 'POST', '/v1/allow-batch', { requests: Array.from({ length: 10_001 }, () => req) })).json).toMatchObject({ field: 'requests' });

    expect(await call(node, 'GET', '/healthz')).toMatchObject({ status: 200, json: { status: 'alive' } });
    expect(await call(node, 'GET', '/readyz')).toMatchObject({ status: 200, json: { ready: true } });
  });

  it('asks for the bearer token on /v1/*, not on the health probes', async () => {
    const node = await createNode({ httpPort: 0, apiTokens: [TOKEN] });
    nodes.push(node);
    const req = { key: 'u', limit: 5, windowMs: 1_000 };
    expect(await call(node, 'POST', '/v1/allow', req)).toMatchObject({ status: 401, json: { code: 'UNAUTHENTICATED' } });
    expect((await call(node, 'POST', '/v1/allow', req, { authorization: 'Bearer wrong-token-0123456789' })).status).toBe(401);
    expect((await call(node, 'POST', '/v1/allow', req, { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect((await call(node, 'GET', '/v1/cluster')).status).toBe(401);
    expect((await call(node, 'GET', '/healthz')).status).toBe(200);
    expect((await call(node, 'GET', '/readyz')).status).toBe(200);
  });

  it('on a cluster: /v1/cluster shows the members and their shares of the keys, every node is ready, and decisions are exact through any node', async () => {
    nodes = await startCluster(3, { httpPort: 0, replicas: 1 });
    const view = (await call(nodes[1]!, 'GET', '/v1/cluster')).json;
    expect((view['members'] as { nodeId: string; state: string }[]).map((m) => [m.nodeId, m.state])).toEqual([['n0', 'active'], ['n1', 'active'], ['n2', 'active']]);
    const shares = Object.values(view['ownershipShares'] as Record<string, number>);
    expect(shares).toHaveLength(3);
    expect(shares.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    for (const share of shares) expect(share).toBeGreaterThan(0.25);
    for (const node of nodes) expect((await call(node, 'GET', '/readyz')).status).toBe(200);
    let allowed = 0;
    for (let i = 0; i < 9; i++) if ((await call(nodes[i % 3]!, 'POST', '/v1/allow', { key: 'shared', limit: 5, windowMs: 3_600_000 })).json['allowed'] === true) allowed++;
    expect(allowed).toBe(5);
  }, 30_000);
});

/** The Prometheus text exposition as (name with labels) → value. */
function parseExposition(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

describe('metrics', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
  });

  it('GET /metrics exposes the node’s counters in the Prometheus format, read back equal to its stats, behind the token', async () => {
    nodes = await startCluster(3, { httpPort: 0, apiTokens: [TOKEN], handoffWindowMs: 0 });
    const node = nodes[0]!;
    const auth = { authorization: `Bearer ${TOKEN}` };
    for (let i = 0; i < 12; i++) await call(node, 'POST', '/v1/allow', { key: `k${i % 4}`, action: i % 2 === 0 ? 'search' : 'upload', limit: 2, windowMs: 60_000 }, auth);
    // Replicas of these keys may still be arriving here (a quiet owner waits up to replicationMaxDelayMs for a fuller
    // frame), which adds keys between the metrics read and the stats read: let replication finish first.
    await waitFor(() => nodes.every((n) => n.store.pendingChanges === 0), 5_000, 'every owner to send its changes');
    const received = (): number => nodes.reduce((sum, n) => sum + n.stats().replication.entriesReceived, 0);
    for (let last = -1, i = 0; received() !== last && i < 50; i++) {
      last = received();
      await new Promise((r) => setTimeout(r, 2 * node.options.replicationMaxDelayMs));
    }
    expect((await fetch(`http://${node.httpAddress!}/metrics`)).status).toBe(401);
    const res = await fetch(`http://${node.httpAddress!}/metrics`, { headers: auth });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const metrics = parseExposition(await res.text());
    // Decisions by action and result, as the store counted them (the keys this node owns are decided here).
    const byAction = node.store.decisionsPerAction();
    for (const { action, allowed, rejected } of byAction) {
      expect(metrics.get(`ringlimit_decisions_total{action="${action}",result="allowed"}`) ?? 0).toBe(allowed);
      expect(metrics.get(`ringlimit_decisions_total{action="${action}",result="rejected"}`) ?? 0).toBe(rejected);
    }
    const stats = node.stats();
    expect(metrics.get('ringlimit_members')).toBe(3);
    expect(metrics.get('ringlimit_ring_owners')).toBe(3);
    expect(metrics.get('ringlimit_keys')).toBe(stats.store.keys);
    expect(metrics.get('ringlimit_forwards_total')).toBe(stats.forwarder.forwarded);
    expect(metrics.get('ringlimit_load_factor')).toBe(1);
    expect(metrics.get('ringlimit_policy_version')).toBe(0);
    expect(metrics.get('ringlimit_gossip_sent_bytes_total')).toBeGreaterThan(0);
    expect(metrics.get('ringlimit_membership_events_total{event="join"}')).toBeGreaterThanOrEqual(2);
    expect([...metrics.keys()].some((k) => k.startsWith('process_cpu_user_seconds_total'))).toBe(true);
    // No label carries a user key.
    expect([...metrics.keys()].filter((k) => /k[0-3]/.test(k))).toEqual([]);
  }, 30_000);

  it('decision latency: one decision in LATENCY_SAMPLE_EVERY timed, local and forwarded, a well-formed histogram; a client reports its own', async () => {
    nodes = await startCluster(2, { handoffWindowMs: 0 });
    const [a, b] = nodes as [RingLimitNode, RingLimitNode];
    const keys = { here: [] as string[], there: [] as string[] };
    for (let i = 0; keys.here.length < 8 || keys.there.length < 8; i++) (a.ownerOf(`k${i}`, 'lat') === a.options.nodeId ? keys.here : keys.there).push(`k${i}`);
    for (let i = 0; i < LATENCY_SAMPLE_EVERY * 40; i++) await a.allow({ key: i % 2 === 0 ? keys.here[i % 8]! : keys.there[i % 8]!, action: 'lat', limit: 1_000, windowMs: 60_000 });
    const histogram = (text: string, path: string): { buckets: [number, number][]; count: number; sum: number } => {
      const m = parseExposition(text);
      const buckets: [number, number][] = [];
      for (const [name, value] of m) {
        const hit = new RegExp(`^ringlimit_decision_duration_seconds_bucket\\{path="${path}",le="([^"]+)"\\}$`).exec(name);
        if (hit !== null) buckets.push([hit[1] === '+Inf' ? Infinity : Number(hit[1]), value]);
      }
      return { buckets, count: m.get(`ringlimit_decision_duration_seconds_count{path="${path}"}`) ?? NaN, sum: m.get(`ringlimit_decision_duration_seconds_sum{path="${path}"}`) ?? NaN };
    };
    const text = await a.metrics().metrics();
    const local = histogram(text, 'local');
    const forwarded = histogram(text, 'forwarded');
    // 40 sampled calls: the last of every LATENCY_SAMPLE_EVERY (an odd i, so a key owned elsewhere: forwarded).
    expect(local.count + forwarded.count).toBe(40);
    expect(forwarded.count).toBe(40);
    for (const h of [local, forwarded]) {
      expect(h.buckets.length).toBe(22);
      expect(h.buckets.at(-1)).toEqual([Infinity, h.count]);
      for (let i = 1; i < h.buckets.length; i++) {
        expect(h.buckets[i]![0]).toBeGreaterThan(h.buckets[i - 1]![0]);
        expect(h.buckets[i]![1]).toBeGreaterThanOrEqual(h.buckets[i - 1]![1]);
      }
    }
    expect(forwarded.sum).toBeGreaterThan(0);
    // Replication lag: a's own keys changed, were flushed to b and acked (one measure per flush).
    let lag = { buckets: [] as [number, number][], count: 0, sum: 0 };
    for (let i = 0; i < 50 && !(lag.count > 0); i++) {
      await new Promise((r) => setTimeout(r, 20));
      const m = parseExposition(await a.metrics().metrics());
      lag = {
        buckets: [...m].filter(([k]) => k.startsWith('ringlimit_replication_lag_seconds_bucket{le=')).map(([k, v]): [number, number] => [k.includes('+Inf') ? Infinity : Number(/le="([^"]+)"/.exec(k)![1]), v]),
        count: m.get('ringlimit_replication_lag_seconds_count') ?? 0,
        sum: m.get('ringlimit_replication_lag_seconds_sum') ?? 0,
      };
    }
    expect(lag.count).toBeGreaterThan(0);
    expect(lag.buckets.at(-1)).toEqual([Infinity, lag.count]);
    expect(lag.sum / lag.count).toBeLessThan(5); // seconds: well under the ack timeout
    // The owner's own callers are timed as local.
    for (let i = 0; i < LATENCY_SAMPLE_EVERY * 2; i++) await b.allow({ key: keys.there[i % 8]!, action: 'lat', limit: 1_000, windowMs: 60_000 });
    expect(histogram(await b.metrics().metrics(), 'local').count).toBe(2);
    expect(histogram(await b.metrics().metrics(), 'forwarded').count).toBe(0);

    const { RingLimitClient } = await import('../../src/node/client/client.js');
    const client = new RingLimitClient({ nodes: [a.grpcAddress!] });
    try {
      for (let i = 0; i < LATENCY_SAMPLE_EVERY * 5; i++) await client.allow({ key: `c${i}`, action: 'lat', limit: 5, windowMs: 60_000 });
      const clientText = await client.metrics().metrics();
      const c = histogram(clientText, 'client');
      expect(c.count).toBe(5);
      expect(c.buckets.at(-1)).toEqual([Infinity, 5]);
      expect(c.sum).toBeGreaterThan(0);
      expect(parseExposition(clientText).get('ringlimit_client_requests_total')).toBe(LATENCY_SAMPLE_EVERY * 5);
    } finally {
      client.close();
    }
  }, 30_000);

  it('an embedded node exposes the same registry for its own server', async () => {
    const node = await createNode();
    nodes.push(node);
    await node.allow({ key: 'u', action: 'a', limit: 1, windowMs: 1_000 });
    await node.allow({ key: 'u', action: 'a', limit: 1, windowMs: 1_000 });
    const metrics = parseExposition(await node.metrics().metrics());
    expect(metrics.get('ringlimit_decisions_total{action="a",result="allowed"}')).toBe(1);
    expect(metrics.get('ringlimit_decisions_total{action="a",result="rejected"}')).toBe(1);
  });
});

describe('ringlimit status', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
  });

  it('prints every member with its state, share of the keys and rates measured from its metrics', async () => {
    const { renderStatus } = await import('../../src/cli/status.js');
    nodes = await startCluster(2, { httpPort: 0, handoffWindowMs: 0 });
    let stop = false;
    const load = (async () => {
      for (let i = 0; !stop && i < 100_000; i++) {
        await nodes[i % 2]!.allow({ key: `s${i % 50}`, action: 'st', limit: 3, windowMs: 60_000 });
        if (i % 20 === 0) await new Promise((r) => setTimeout(r, 1));
      }
    })();
    const text = await renderStatus(nodes[0]!.httpAddress!, undefined, 500);
    stop = true;
    await load;
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^ringlimit cluster seen from n0 .*: 2 members, policy version 0$/);
    const rows = lines.filter((l) => /^n[01] /.test(l));
    expect(rows).toHaveLength(2);
    const shares = rows.map((r) => Number(/ (\d+\.\d) % /.exec(r)![1]));
    expect(shares.reduce((a, b) => a + b, 0)).toBeCloseTo(100, 0);
    for (const row of rows) expect(row).toMatch(/ active +alive /);
    const total = /in all: ([\d.k]+) decisions\/s, ([\d.k]+) rejected\/s/.exec(text)!;
    expect(Number(total[1]!.replace('k', ''))).toBeGreaterThan(0);
    expect(Number(total[2]!.replace('k', ''))).toBeGreaterThan(0); // 50 keys of limit 3: most calls are rejected
    // p99 per node and per path, from the sampled latency histograms.
    expect(lines[2]).toMatch(/ forwards\/s +p99 +keys /);
    for (const row of rows) expect(row).toMatch(/ \d+\.\d+ ms /);
    expect(text).toMatch(/^p99 decision latency: \d+\.\d+ ms answered where asked, \d+\.\d+ ms forwarded to the owner$/m);
  }, 30_000);
});
