import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** What an operator puts in /etc/ringlimit (docs/operations.md): a cluster key and bearer tokens, as openssl rand makes them. */
export interface Secrets {
  clusterKey: string;
  apiToken: string;
  adminToken: string;
}

export function makeSecrets(): Secrets {
  return { clusterKey: randomBytes(32).toString('base64'), apiToken: randomBytes(32).toString('hex'), adminToken: randomBytes(32).toString('hex') };
}

/** Writes cluster.key, api.tokens and admin.tokens into `dir`, as the Secret's keys and the systemd unit name them. */
export function writeSecrets(dir: string, secrets: Secrets): void {
  writeFileSync(join(dir, 'cluster.key'), `${secrets.clusterKey}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'api.tokens'), `${secrets.apiToken}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'admin.tokens'), `${secrets.adminToken}\n`, { mode: 0o600 });
}

/**
 * ca.crt, and node.crt / node.key for every address in `ips` (one certificate naming them all,
 * usable by a server and a client, as docs/security.md asks), made with the openssl command.
 */
export function writeCertificates(dir: string, ips: readonly string[]): { ca: Buffer; cert: Buffer; key: Buffer } {
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe', timeout: 30_000 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=ringlimit-test-ca');
  openssl('req', ...ec, '-keyout', 'node.key', '-out', 'node.csr', '-subj', '/CN=ringlimit-node');
  writeFileSync(join(dir, 'node.ext'), `subjectAltName=${ips.map((ip) => `IP:${ip}`).join(',')}\n`);
  openssl('x509', '-req', '-in', 'node.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'node.crt', '-days', '2', '-extfile', 'node.ext');
  const read = (name: string): Buffer => readFileSync(join(dir, name));
  return { ca: read('ca.crt'), cert: read('node.crt'), key: read('node.key') };
}
