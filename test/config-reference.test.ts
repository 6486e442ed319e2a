import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderConfigReference } from '../src/cli/config-reference.js';
import { renderMetricsReference } from '../src/cli/metrics-reference.js';

describe('docs/configuration.md', () => {
  it('is current: generated from the defaults objects (run npm run docs:config after changing one)', () => {
    expect(readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8')).toBe(renderConfigReference());
  });
});

describe('docs/metrics.md', () => {
  it('is current: generated from the registries (run npm run docs:config after changing a metric)', () => {
    expect(readFileSync(new URL('../docs/metrics.md', import.meta.url), 'utf8')).toBe(renderMetricsReference());
  });

  it('lists every ringlimit_ metric a node and a client expose, with its labels', () => {
    const text = renderMetricsReference();
    expect(text).toContain('| `ringlimit_decisions_total` | counter | `action`, `result` |');
    expect(text).toContain('| `ringlimit_decision_duration_seconds` | histogram | `path` |');
    expect(text).toContain('| `ringlimit_client_requests_total` | counter |  |');
    expect(text.match(/^\| `ringlimit_/gm)!.length).toBeGreaterThan(40);
  });
});
