import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { renderMetricsReference } from '../src/cli/metrics-reference.js';
import { createNode, type RingLimitNode } from '../src/node/node.js';

/**
 * docs/grafana/ringlimit-dashboard.json queries only metrics that exist: the ringlimit_ ones of
 * docs/metrics.md (generated from the registries), with their labels, and the process metrics
 * a node's registry exposes; and it charts every metric docs/operations.md says to alert on.
 */

interface Panel {
  title: string;
  type: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}

const dashboard = JSON.parse(readFileSync(new URL('../docs/grafana/ringlimit-dashboard.json', import.meta.url), 'utf8')) as { uid: string; panels: Panel[]; templating: { list: { name: string; type: string }[] } };
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queries = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

/** name → type and labels, from the generated reference (a name in several registries: the union of its labels). */
function documentedMetrics(): Map<string, { type: string; labels: Set<string> }> {
  const metrics = new Map<string, { type: string; labels: Set<string> }>();
  for (const [, name, type, labels] of renderMetricsReference().matchAll(/^\| `(ringlimit_[a-z0-9_]+)` \| (\w+) \| ([^|]*) \|/gm)) {
    const entry = metrics.get(name!) ?? { type: type!, labels: new Set<string>() };
    for (const [, label] of labels!.matchAll(/`(\w+)`/g)) entry.labels.add(label!);
    metrics.set(name!, entry);
  }
  return metrics;
}

const HISTOGRAM_SERIES = /_(bucket|sum|count)$/;
/** Labels every scraped series has (Prometheus adds them), and le on histogram buckets. */
const TARGET_LABELS = new Set(['instance', 'job']);

let node: RingLimitNode | undefined;
afterAll(() => node?.stop({ graceful: false }));

describe('docs/grafana/ringlimit-dashboard.json', () => {
  it('is a Grafana dashboard with a Prometheus data source variable and panels that query', () => {
    expect(dashboard.uid).toBe('ringlimit');
    expect(dashboard.templating.list).toContainEqual(expect.objectContaining({ name: 'datasource', type: 'datasource' }));
    expect(queries.length).toBeGreaterThanOrEqual(15);
    for (const panel of panels.filter((p) => p.type !== 'row')) expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
  });

  it('every query names existing metrics, with labels those metrics have', async () => {
    const documented = documentedMetrics();
    node = await createNode();
    const exposed = new Set((await node.metrics().getMetricsAsJSON()).map((m) => m.name));
    for (const { panel, expr } of queries) {
      const names = [...expr.matchAll(/\b((?:ringlimit|process|nodejs)_[a-z0-9_]+)\b/g)].map((m) => m[1]!);
      expect(names.length, `${panel}: ${expr} names a metric`).toBeGreaterThan(0);
      for (const name of names) {
        const base = name.replace(HISTOGRAM_SERIES, '');
        const ringlimit = documented.get(name) ?? (documented.get(base)?.type === 'histogram' ? documented.get(base) : undefined);
        if (name.startsWith('ringlimit_')) expect(ringlimit, `${panel}: ${name} is in docs/metrics.md`).toBeDefined();
        else expect(exposed.has(name), `${panel}: ${name} is in a node's registry`).toBe(true);
        const labels = new Set([...(ringlimit?.labels ?? []), ...TARGET_LABELS, ...(name.endsWith('_bucket') ? ['le'] : [])]);
        // Labels in the metric's selector.
        for (const [, selector] of expr.matchAll(new RegExp(`${name}\\{([^}]*)\\}`, 'g'))) {
          for (const [, label] of selector!.matchAll(/(\w+)\s*=~?/g)) expect(labels.has(label!), `${panel}: ${name} has label ${label}`).toBe(true);
        }
        // Labels it is aggregated by, when it is the only metric of the query.
        if (new Set(names.map((n) => n.replace(HISTOGRAM_SERIES, ''))).size === 1) {
          for (const [, by] of expr.matchAll(/by \(([^)]*)\)/g)) for (const label of by!.split(',').map((l) => l.trim())) expect(labels.has(label), `${panel}: ${name} has label ${label}`).toBe(true);
        }
      }
    }
  });

  it("charts every ringlimit metric of docs/operations.md's alert table", () => {
    const operations = readFileSync(new URL('../docs/operations.md', import.meta.url), 'utf8');
    const table = operations.slice(operations.indexOf('## What to alert on'), operations.indexOf('\n## ', operations.indexOf('## What to alert on') + 1));
    const alerted = [...new Set([...table.matchAll(/`((?:ringlimit|process)_[a-z0-9_]+)/g)].map((m) => m[1]!))];
    expect(alerted.length).toBeGreaterThanOrEqual(10);
    const all = queries.map((q) => q.expr).join('\n');
    for (const name of alerted) expect(all, `${name} is on the dashboard`).toContain(name);
  });
});
