import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { packageVersion } from '../../src/cli/main.js';
import { SERVE_USAGE } from '../../src/cli/serve.js';

describe('ringlimit --version and serve --help', () => {
  it('--version prints the package version', () => {
    const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(packageVersion()).toBe(manifest.version);
  });

  it('serve --help lists every HTTP route and every call the admin token guards', () => {
    const routes = ['POST /v1/allow', 'POST /v1/allow-batch', 'GET /v1/cluster', 'GET /metrics', 'POST /v1/admin/inspect|reset|set', 'GET /healthz', 'GET /readyz'];
    for (const route of routes) expect(SERVE_USAGE.replace(/\s+/g, ' ')).toContain(route);
    const admin = SERVE_USAGE.slice(SERVE_USAGE.indexOf('--admin-token-file'), SERVE_USAGE.indexOf('--on-unavailable')).replace(/\s+/g, ' ');
    for (const call of ['Inspect', 'Reset', 'SetRemaining', 'SetPolicies', 'GetPolicies', 'SetLoadFactor']) expect(admin).toContain(call);
  });
});
