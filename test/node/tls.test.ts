import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../../src/cli/serve.js';
import { RingLimitClient } from '../../src/node/client/client.js';
import type { RingLimitNode } from '../../src/node/node.js';
import type { NodeTls } from '../../src/node/transport/credentials.js';
import { startCluster, stopAll } from './helpers.js';

/** A CA, a node certificate for 127.0.0.1, a client certificate, and a second CA nobody trusts (openssl). */
function makeCertificates(dir: string): { node: NodeTls; client: { ca: Buffer; cert: Buffer; key: Buffer }; strangerClient: { ca: Buffer; cert: Buffer; key: Buffer }; files: Record<string, string> } {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ca = (name: string) => run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`);
  const leaf = (name: string, signer: string, san: string) => {
    run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', `${signer}.crt`, '-CAkey', `${signer}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  };
  ca('ca');
  ca('other-ca');
  leaf('node', 'ca', 'IP:127.0.0.1,DNS:localhost');
  leaf('client', 'ca', 'DNS:client');
  leaf('stranger', 'other-ca', 'DNS:stranger');
  const file = (name: string) => readFileSync(join(dir, name));
  return {
    node: { cert: file('node.crt'), key: file('node.key'), ca: file('ca.crt') },
    client: { ca: file('ca.crt'), cert: file('client.crt'), key: file('client.key') },
    strangerClient: { ca: file('ca.crt'), cert: file('stranger.crt'), key: file('stranger.key') },
    files: { cert: join(dir, 'node.crt'), key: join(dir, 'node.key'), ca: join(dir, 'ca.crt') },
  };
}

const TOKEN_A = 'token-a-0123456789abcdef';
const TOKEN_B = 'token-b-0123456789abcdef';
const request = { key: 'alice', action: 'tls', limit: 3, windowMs: 60_000 };

describe('mutual TLS and bearer tokens', () => {
  let dir = '';
  let certs: ReturnType<typeof makeCertificates>;
  let nodes: RingLimitNode[] = [];
  const clients: RingLimitClient[] = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ringlimit-tls-'));
    certs = makeCertificates(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await stopAll(nodes);
  });

  const client = (options: Partial<ConstructorParameters<typeof RingLimitClient>[0]>) => {
    // A refused client fails at the handshake, at once: the deadline only bounds a busy machine's slow answers.
    const c = new RingLimitClient({ nodes: nodes.map((n) => n.grpcAddress!), timeoutMs: 5_000, ...options });
    clients.push(c);
    return c;
  };

  it('nodes talk to each other over mutual TLS; a client with a certificate the CA signed is answered, others are not', async () => {
    nodes = await startCluster(3, { tls: certs.node });
    const good = client({ tls: certs.client });
    const answers = await Promise.all(Array.from({ length: 5 }, () => good.allow(request)));
    expect(answers.filter((a) => a.allowed).length).toBe(3); // keys owned by other nodes: forwarded over TLS
    await expect(client({}).allow(request)).rejects.toMatchObject({ code: 'UNAVAILABLE' }); // plain text
    await expect(client({ tls: { ca: certs.client.ca } }).allow(request)).rejects.toMatchObject({ code: 'UNAVAILABLE' }); // no client certificate
    await expect(client({ tls: certs.strangerClient }).allow(request)).rejects.toMatchObject({ code: 'UNAVAILABLE' }); // signed by another CA
  });

  it('with API tokens, any of them is accepted and a call without one is refused', async () => {
    nodes = await startCluster(2, { apiTokens: [TOKEN_A, TOKEN_B] });
    expect((await client({ token: TOKEN_A }).allow(request)).allowed).toBe(true);
    expect((await client({ token: TOKEN_B, ringAware: false }).allow(request)).allowed).toBe(true);
    await expect(client({ token: 'token-c-0123456789abcdef' }).allow(request)).rejects.toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringMatching(/bearer token/) });
    await expect(client({}).allow(request)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
  });

  it('serve reads --tls-cert/--tls-key/--tls-ca and --api-token-file, and refuses an incomplete set', () => {
    const tokens = join(dir, 'tokens');
    writeFileSync(tokens, `# rotate: add the new token, then remove the old one\n${TOKEN_A}\n${TOKEN_B}\n`);
    const { options } = parseServeArgs(['--tls-cert', certs.files.cert!, '--tls-key', certs.files.key!, '--tls-ca', certs.files.ca!, '--api-token-file', tokens]);
    expect(options.tls?.cert.equals(certs.node.cert)).toBe(true);
    expect(options.apiTokens).toEqual([TOKEN_A, TOKEN_B]);
    expect(() => parseServeArgs(['--tls-cert', certs.files.cert!])).toThrow(/go together/);
    expect(() => parseServeArgs(['--tls-cert', 'nope', '--tls-key', 'nope', '--tls-ca', 'nope'])).toThrow(/--tls-cert: cannot read nope/);
  });
});
