import { randomBytes } from 'node:crypto';
import { chmodSync, linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { RingLimitError } from '../../common/errors.js';
import { isLoopbackHost } from '../../gossip/index.js';

/** What decides a member's cluster key (NodeOptions has them all). */
export interface ClusterKeyInput {
  cluster: boolean;
  membership: unknown;
  host: string;
  join: readonly string[];
  gossipKeys: readonly string[];
  localClusterKey: boolean;
  insecureNoClusterKey: boolean;
}

/**
 * How a member authenticates gossip and peer streams:
 * - `configured`: the keys it was given (gossipKeys, serve --gossip-key-file);
 * - `local`: a one-host cluster (every bind and seed on loopback) with localClusterKey (serve's
 *   default): the per-user key at `path`, created once, shared by this user's nodes on this host;
 * - `own`: no key, no seed, a non-loopback bind: a key of its own, so nobody can join it;
 * - `none`: unauthenticated, told why (insecureNoClusterKey, or an embedded one-host cluster);
 * - `refused`: a cluster beyond this host without a key: the node does not start;
 * - `notMember`: not a gossip member (no cluster, or an injected membership).
 */
export type ClusterKeyPlan =
  | { kind: 'configured' | 'own' | 'notMember' }
  | { kind: 'local'; path: string }
  | { kind: 'none' | 'refused'; why: string };

/** The host of a seed "host:port" / "[v6]:port". */
function seedHost(seed: string): string {
  if (seed.startsWith('[')) return seed.slice(1, seed.indexOf(']'));
  const colon = seed.lastIndexOf(':');
  return colon < 0 ? seed : seed.slice(0, colon);
}

export function clusterKeyPlan(o: ClusterKeyInput, env: NodeJS.ProcessEnv = process.env): ClusterKeyPlan {
  if (!o.cluster || o.membership !== undefined) return { kind: 'notMember' };
  if (o.gossipKeys.length > 0) return { kind: 'configured' };
  const oneHost = isLoopbackHost(o.host) && o.join.every((seed) => isLoopbackHost(seedHost(seed)));
  if (o.insecureNoClusterKey) return { kind: 'none', why: 'insecureNoClusterKey (--insecure-no-cluster-key) is set' };
  if (oneHost) {
    return o.localClusterKey
      ? { kind: 'local', path: localKeyPath(env) }
      : { kind: 'none', why: 'an embedded one-host cluster (every address on loopback) without gossipKeys or localClusterKey' };
  }
  if (o.join.length === 0) return { kind: 'own' };
  return {
    kind: 'refused',
    why:
      `a cluster beyond this host (host ${JSON.stringify(o.host)}, seeds ${JSON.stringify(o.join)}) needs a cluster key: without one, anyone who reaches ` +
      'the gossip and gRPC ports becomes a member. Give every node the same key (gossipKeys; serve --gossip-key-file, `openssl rand -base64 32`), ' +
      'or set insecureNoClusterKey (serve --insecure-no-cluster-key) on a network only the cluster reaches',
  };
}

/** The per-user local cluster key: $XDG_STATE_HOME/ringlimit/local-cluster.key, else ~/.local/state/ringlimit/local-cluster.key. */
export function localKeyPath(env: NodeJS.ProcessEnv = process.env): string {
  const state = env['XDG_STATE_HOME'];
  const base = state !== undefined && isAbsolute(state) ? state : join(homedir(), '.local', 'state');
  return join(base, 'ringlimit', 'local-cluster.key');
}

const KEY_PATTERN = /^[A-Za-z0-9+/]{22,88}={0,2}$/;

/**
 * The key in `path`, created (32 random bytes, base64, mode 0600, its folder 0700) if there is
 * none. Nodes started at the same moment agree: the file appears whole, by a hard link that
 * fails if another node made it first (then its key is read). Refuses a file that others can
 * read or that holds no key, with a typed error naming the path.
 */
export function readOrCreateLocalKey(path: string): string {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}`;
    writeFileSync(temp, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    chmodSync(temp, 0o600);
    try {
      linkSync(temp, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      unlinkSync(temp);
    }
    if ((statSync(path).mode & 0o077) !== 0) throw new Error('it can be read by other users: chmod 600 it, or remove it to have a new one made');
    const key = readFileSync(path, 'utf8').trim();
    if (!KEY_PATTERN.test(key)) throw new Error('it does not hold a base64 key of 16 to 64 bytes');
    return key;
  } catch (error) {
    throw new RingLimitError(
      'FAILED_PRECONDITION',
      `the local cluster key ${path}: ${(error as Error).message} (set XDG_STATE_HOME to use another folder, or give a key with --gossip-key-file)`,
      'localClusterKey',
    );
  }
}

/** The keys a member signs with for `plan` (empty: none), and the warning to give on every start, if any. */
export function clusterKeys(plan: ClusterKeyPlan, configured: readonly string[]): { keys: string[]; warning: string | undefined } {
  switch (plan.kind) {
    case 'configured':
      return { keys: [...configured], warning: undefined };
    case 'local':
      return { keys: [readOrCreateLocalKey(plan.path)], warning: undefined };
    case 'own':
      return {
        keys: [randomBytes(32).toString('base64')],
        warning: 'no cluster key given: this node made one of its own, so no other node can join it; give every node the same --gossip-key-file (gossipKeys) to form a cluster',
      };
    case 'none':
      return {
        keys: [],
        warning: `NO CLUSTER KEY — gossip and peer streams are unauthenticated: every process that reaches the gossip or gRPC port can join, take keys and change every node's state (${plan.why}). Give every node the same --gossip-key-file (gossipKeys)`,
      };
    case 'refused':
      throw new RingLimitError('INVALID_ARGUMENT', plan.why, 'gossipKeys');
    case 'notMember':
      return { keys: [], warning: undefined };
  }
}
