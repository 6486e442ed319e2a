import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNode, type RingLimitNode } from '../../src/node/node.js';
import type { NodeTls } from '../../src/node/transport/credentials.js';

interface Certificates {
  node: NodeTls;
  /** A client certificate the node's CA signed. */
  client: { cert: Buffer; key: Buffer };
  /** A client certificate of a CA the node does not trust. */
  stranger: { cert: Buffer; key: Buffer };
}

/** A CA, a node certificate for 127.0.0.1, a client certificate, and one of another CA (openssl). */
function makeCertificates(dir: string): Certificates {
  const run = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe', timeout: 30_000 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const ca = (name: string): void => run('req', '-x509', ...ec, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`);
  const leaf = (name: string, signer: string, san: string): void => {
    run('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', `${signer}.crt`, '-CAkey', `${signer}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  };
  ca('ca');
  ca('other-ca');
  leaf('node', 'ca', 'IP:127.0.0.1');
  leaf('client', 'ca', 'DNS:client');
  leaf('stranger', 'other-ca', 'DNS:stranger');
  const file = (name: string): Buffer => readFileSync(join(dir, name));
  return {
    node: { cert: file('node.crt'), key: file('node.key'), ca: file('ca.crt') },
    client: { cert: file('client.crt'), key: file('client.key') },
    stranger: { cert: file('stranger.crt'), key: file('stranger.key') },
  };
}

interface Answer {
  status: number;
  body: string;
}

/** One HTTPS call to `address` (the node's certificate checked against `ca`), with a client certificate or none. */
function call(address: string, ca: Buffer, method: string, path: string, identity: { cert: Buffer; key: Buffer } | undefined, body?: object): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const headers = text === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) };
    // A fresh connection per call (agent: false): no TLS session or socket is reused between identities.
    const req = request(`https://${address}${path}`, { method, ca, ...identity, headers, agent: false, timeout: 5_000 });
    req.once('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 5 s`)));
    req.once('error', reject);
    req.once('response', (res) => {
      let answer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (answer += chunk));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body: answer }));
      res.once('error', reject);
    });
    req.end(text);
  });
}

const HEALTHCHECK = join(import.meta.dirname, '..', '..', 'deploy', 'docker', 'healthcheck.mjs');

/** The image's HEALTHCHECK script against `port`: its exit code. */
function healthcheck(port: string): Promise<number> {
  return new Promise((resolve) => {
    execFile(process.execPath, [HEALTHCHECK], { env: { ...process.env, RINGLIMIT_HTTP_PORT: port }, timeout: 20_000 }, (error) => resolve(error === null ? 0 : typeof error.code === 'number' ? error.code : -1));
  });
}

const allow = { key: 'alice', action: 'tls-http', limit: 3, windowMs: 60_000 };

describe('the HTTP API with TLS: probes without a client certificate, everything else with one', () => {
  let dir = '';
  let certs: Certificates;
  let node: RingLimitNode | undefined;
  let address = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ringlimit-http-tls-'));
    certs = makeCertificates(dir);
    node = await createNode({ nodeId: 'tls-http', port: 0, gossipPort: 0, httpPort: 0, gossipPreset: 'test', clusterName: `tls-http-${process.pid}`, tls: certs.node });
    address = node.httpAddress!;
  });
  afterAll(async () => {
    await node?.stop({ graceful: false });
    rmSync(dir, { recursive: true, force: true });
  });

  it('a client without a certificate (the kubelet, a container health check) gets /healthz and /readyz', async () => {
    expect(await call(address, certs.node.ca, 'GET', '/healthz', undefined)).toMatchObject({ status: 200, body: expect.stringContaining('"alive"') });
    expect(await call(address, certs.node.ca, 'GET', '/readyz', undefined)).toMatchObject({ status: 200, body: expect.stringContaining('"ready":true') });
    expect((await call(address, certs.node.ca, 'GET', '/readyz', certs.stranger)).status).toBe(200);
  });

  it('without a certificate the CA signed, every other path is refused with 403 and no body (not even 404 for a path that does not exist)', async () => {
    for (const identity of [undefined, certs.stranger]) {
      for (const [method, path, body] of [['POST', '/v1/allow', allow], ['POST', '/v1/allow-batch', { requests: [allow] }], ['GET', '/v1/cluster'], ['GET', '/metrics'], ['POST', '/v1/admin/inspect', allow], ['GET', '/no-such-path']] as const) {
        expect(await call(address, certs.node.ca, method, path, identity, body), `${method} ${path} ${identity === undefined ? 'without a certificate' : 'with a stranger certificate'}`).toEqual({ status: 403, body: '' });
      }
    }
    // Nothing refused was decided: the key is untouched.
    expect((await call(address, certs.node.ca, 'POST', '/v1/allow', certs.client, allow)).body).toContain('"remaining":2');
  });

  it('with a certificate the CA signed, everything answers as without TLS', async () => {
    const c = certs.client;
    expect((await call(address, certs.node.ca, 'GET', '/healthz', c)).status).toBe(200);
    expect((await call(address, certs.node.ca, 'GET', '/readyz', c)).status).toBe(200);
    expect(await call(address, certs.node.ca, 'POST', '/v1/allow', c, { ...allow, key: 'bob' })).toMatchObject({ status: 200, body: expect.stringContaining('"allowed":true') });
    expect((await call(address, certs.node.ca, 'POST', '/v1/allow-batch', c, { requests: [{ ...allow, key: 'bob' }] })).status).toBe(200);
    expect(await call(address, certs.node.ca, 'GET', '/v1/cluster', c)).toMatchObject({ status: 200, body: expect.stringContaining('tls-http') });
    expect(await call(address, certs.node.ca, 'GET', '/metrics', c)).toMatchObject({ status: 200, body: expect.stringContaining('ringlimit_') });
    expect((await call(address, certs.node.ca, 'GET', '/no-such-path', c)).status).toBe(404);
    // Admin calls are off without --admin-token-file: refused by the API itself, not by TLS.
    expect((await call(address, certs.node.ca, 'POST', '/v1/admin/inspect', c, allow)).status).toBe(401);
  });

  it("the image's HEALTHCHECK (deploy/docker/healthcheck.mjs, no client certificate) finds the node ready over HTTPS", async () => {
    expect(await healthcheck(address.split(':')[1]!)).toBe(0);
  });
});
