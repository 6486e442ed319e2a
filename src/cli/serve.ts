import { leaseDefaults } from '../node/lease/lease-options.js';
import { isEnvoyConfigFile, readEnvoyConfig } from '../node/ops/envoy-config-file.js';
import { ENVOY_FLAGS, ENVOY_USAGE, envoyLoadOptionsOf, envoySettingsOf, watchEnvoyConfig } from './serve-envoy.js';
import type { EnvoyLoadOptions } from '../envoy/descriptors.js';
import type { Policies } from '../limiter/policies.js';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { RingLimitError } from '../common/errors.js';
import { createNode, type RingLimitNode } from '../node/node.js';
import { resolveNodeOptions, type NodeOptionsInput } from '../node/options.js';
import { clusterKeyPlan } from '../node/cluster/cluster-key.js';
import { callerLimitsDefaults, type CallerLimits } from '../node/api/caller-ledger.js';
import { readNodeTls } from '../node/transport/credentials.js';
import { readPolicyFile, watchPolicyFile } from '../node/ops/policy-file.js';
import { IdleGc } from '../node/ops/idle-gc.js';
import { createLogger, parseLogLevel, type LogLevel, type Logger } from './logger.js';
import { enableHarness, listenForFaultCommands } from '../chaos/harness-mode.js';

export const SERVE_USAGE = `usage: ringlimit serve [options]

  --node-id ID            stable node identity (default: random)
  --host HOST             address to bind and advertise (default 127.0.0.1)
  --port PORT             gRPC port: public API and peer traffic (default 0, which picks a free port)
  --gossip-port PORT      UDP port for SWIM gossip (default 0, which picks a free port)
  --http-port PORT        serve the HTTP API too, with the same tokens and TLS as the gRPC port:
                          POST /v1/allow, POST /v1/allow-batch, GET /v1/cluster, GET /metrics
                          (Prometheus), POST /v1/admin/inspect|reset|set (admin token), and
                          GET /healthz, GET /readyz (no token, and with TLS no client certificate:
                          for probes)
  --join HOST:PORT[,...]  gossip address of one or more members to join (DNS names: every address);
                          when none answers, the node runs as a one-node cluster and keeps trying
                          them with backoff, logging each failure
  --join-timeout T        give up and exit when no seed answers within T (e.g. 30s)
  --replicas N            copies of each key's state after its owner (default 1)
  --replication MODE      async (default) or sync
  --data-dir DIR          keep snapshots here (periodically and on graceful stop); load at start
  --snapshot-interval T   with --data-dir: a snapshot every T (e.g. 5s, 500ms; default 5s; 0: only
                          on graceful stop). A kill -9 loses at most about one interval
  --set-aside-corrupt-snapshot
                          a snapshot that fails its checksum is renamed aside and the node starts
                          empty (default: refuse to start)
  --max-keys N            keys (action, key pairs) held at most (default 1000000)
  --policies FILE         limits declared per action, group and user (YAML or JSON; docs/policies.md);
                          re-read when the file changes (a bad edit is logged and the policies in
                          force stay)
${ENVOY_USAGE}  --caller-limit NAME=N   a bound per caller on the gRPC port (repeat for several), e.g.
                          maxCallsPerConnection=100 (advertised to the caller, whose gRPC stack
                          queues calls past it), maxOpenCalls=10000, maxCallsPerHost=1000 (past
                          these a call waits for room), maxQueuedCalls=10000, maxQueuedMs=10000
                          (past these a waiting call is refused), maxReadingCallsPerConnection=2,
                          maxItemsPerConnection=100000, maxUnsentBytesPerConnection=4194304,
                          maxUnsentBytes=67108864, maxUnsentAgeMs=10000 (the defaults; docs/security.md)
  --cluster-name NAME     carried by every gossip packet: nodes of another cluster (or of none) are
                          ignored, so two clusters on one network never merge
  --gossip-key-file FILE  cluster key(s), base64, one per line (the first signs): authenticate
                          gossip and every peer stream. Without it: on one host (--host and every
                          --join on loopback) the nodes share a per-user key made once in
                          $XDG_STATE_HOME/ringlimit/local-cluster.key (else ~/.local/state/…);
                          a lone node on another address makes a key of its own (nobody can join
                          it); a cluster beyond this host is refused
  --insecure-no-cluster-key
                          run without a cluster key, beyond this host too: anyone who reaches the
                          ports becomes a member (warned on every start)
  --tls-cert FILE         with --tls-key and --tls-ca: mutual TLS on the gRPC port (public API
  --tls-key FILE          and peer streams); peers and clients need a certificate the CA signed
  --tls-ca FILE
  --api-token-file FILE   bearer tokens the public API accepts, one per line (several, to rotate):
                          the gRPC calls, and on HTTP /v1/allow, /v1/allow-batch, /v1/cluster, /metrics
  --admin-token-file FILE bearer tokens the admin calls accept, one per line: Inspect, Reset and
                          SetRemaining of a user's key (HTTP: POST /v1/admin/inspect|reset|set),
                          SetPolicies, GetPolicies and SetLoadFactor; without it they are refused
  --on-unavailable P      local (default), allow or deny, when no owner answers
  --split-share T         while members that were active are out of reach, decide with this side's
                          share of each key's allowance; one out of reach this long is declared
                          dead (default 60s; 0: off — each side may admit a whole limit)
  --global-sync-ms MS     hot-key mode: how often hits go to owners and owners broadcast (default 10)
  --leases                leases: busy fixed-window keys answered from slices the owners grant,
                          exact and without a hop (docs/node.md)
  --lease NAME=N          a numeric lease option (e.g. thresholdPerSec=5, leaseTtlMs=2000); repeatable
  --gossip-preset NAME    lan (default) or test
  --log-level LEVEL       trace, debug, info (default), warn, error, fatal or silent: JSON lines on
                          stderr (membership, ownership, policies, warnings; never per request)
  --ready-json            print one JSON line with the bound addresses once serving
  --harness               chaos-harness mode: accept fault commands (partitions, clock
                          offset and drift) as JSON lines on stdin; never use in production
`;

function port(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65_535) throw new RingLimitError('INVALID_ARGUMENT', `--${name} must be a port number 0..65535, got ${JSON.stringify(value)}`);
  return n;
}

/** The non-empty lines of a secrets file that are not comments. */
function readLines(flag: string, path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new RingLimitError('INVALID_ARGUMENT', `--${flag}: cannot read ${path}: ${(error as Error).message}`);
  }
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

/** "5s", "500ms", "2m" or a plain number of milliseconds. */
function durationMs(name: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value);
  if (match === null) throw new RingLimitError('INVALID_ARGUMENT', `--${name} must be a duration such as 5s, 500ms or 2m, got ${JSON.stringify(value)}`);
  const unit = match[2] === 's' ? 1_000 : match[2] === 'm' ? 60_000 : 1;
  return Number(match[1]) * unit;
}

export interface ServeArgs {
  options: NodeOptionsInput;
  readyJson: boolean;
  harness: boolean;
  policyFile: string | undefined;
  /** The Envoy configuration's files and directories (none: not served), and how they load. */
  envoyPaths: string[];
  envoyLoad: EnvoyLoadOptions;
  logLevel: LogLevel;
}

export function parseServeArgs(args: string[]): ServeArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        'node-id': { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        'gossip-port': { type: 'string' },
        'http-port': { type: 'string' },
        join: { type: 'string' },
        'join-timeout': { type: 'string' },
        replicas: { type: 'string' },
        replication: { type: 'string' },
        'data-dir': { type: 'string' },
        'snapshot-interval': { type: 'string' },
        'set-aside-corrupt-snapshot': { type: 'boolean' },
        'max-keys': { type: 'string' },
        'caller-limit': { type: 'string', multiple: true },
        policies: { type: 'string' },
        ...ENVOY_FLAGS,
        'gossip-key-file': { type: 'string' },
        'insecure-no-cluster-key': { type: 'boolean' },
        'cluster-name': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'tls-ca': { type: 'string' },
        'api-token-file': { type: 'string' },
        'admin-token-file': { type: 'string' },
        'on-unavailable': { type: 'string' },
        'split-share': { type: 'string' },
        'global-sync-ms': { type: 'string' },
        leases: { type: 'boolean' },
        lease: { type: 'string', multiple: true },
        'gossip-preset': { type: 'string' },
        'ready-json': { type: 'boolean' },
        'log-level': { type: 'string' },
        harness: { type: 'boolean' },
      },
    });
  } catch (error) {
    throw new RingLimitError('INVALID_ARGUMENT', `${(error as Error).message}\n\n${SERVE_USAGE}`);
  }
  const v = parsed.values;
  const options: NodeOptionsInput = { cluster: true };
  if (v['node-id'] !== undefined) options.nodeId = v['node-id'];
  if (v.host !== undefined) options.host = v.host;
  const grpcPort = port('port', v.port);
  if (grpcPort !== undefined) options.port = grpcPort;
  const gossipPort = port('gossip-port', v['gossip-port']);
  if (gossipPort !== undefined) options.gossipPort = gossipPort;
  const httpPort = port('http-port', v['http-port']);
  if (httpPort !== undefined) options.httpPort = httpPort;
  if (v.join !== undefined) options.join = v.join.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (v['join-timeout'] !== undefined) options.joinTimeoutMs = durationMs('join-timeout', v['join-timeout']);
  if (v.replicas !== undefined) {
    if (!/^\d+$/.test(v.replicas)) throw new RingLimitError('INVALID_ARGUMENT', `--replicas must be a whole number, got ${JSON.stringify(v.replicas)}`);
    options.replicas = Number(v.replicas);
  }
  if (v.replication !== undefined) options.replication = v.replication as NodeOptionsInput['replication'];
  if (v['data-dir'] !== undefined) options.dataDir = v['data-dir'];
  if (v['snapshot-interval'] !== undefined) options.snapshotIntervalMs = durationMs('snapshot-interval', v['snapshot-interval']);
  if (v['set-aside-corrupt-snapshot'] === true) options.onCorruptSnapshot = 'set-aside';
  if (v['max-keys'] !== undefined) {
    if (!/^\d+$/.test(v['max-keys'])) throw new RingLimitError('INVALID_ARGUMENT', `--max-keys must be a whole number, got ${JSON.stringify(v['max-keys'])}`);
    options.store = { maxKeys: Number(v['max-keys']) };
  }
  for (const assignment of v['caller-limit'] ?? []) {
    const match = /^(\w+)=(\d+)$/.exec(assignment);
    const name = match?.[1] as keyof CallerLimits | undefined;
    if (match === null || name === undefined || !(name in callerLimitsDefaults)) {
      throw new RingLimitError('INVALID_ARGUMENT', `--caller-limit must be NAME=N with NAME one of ${Object.keys(callerLimitsDefaults).join(', ')}; got ${JSON.stringify(assignment)}`);
    }
    options.callerLimits = { ...options.callerLimits, [name]: Number(match[2]) };
  }
  if (v['split-share'] !== undefined) options.splitShareMs = durationMs('split-share', v['split-share']);
  if (v['global-sync-ms'] !== undefined) {
    // A number, or NaN that the node's option validation refuses with the option's name.
    options.globalSyncMs = /^\d+(\.\d+)?$/.test(v['global-sync-ms']) ? Number(v['global-sync-ms']) : Number.NaN;
  }
  if (v.leases === true) options.leases = { enabled: true };
  for (const assignment of v.lease ?? []) {
    const match = /^(\w+)=(\d+(\.\d+)?)$/.exec(assignment);
    const name = match?.[1];
    if (match === null || name === undefined || name === 'enabled' || name === 'actions' || !(name in leaseDefaults)) {
      throw new RingLimitError('INVALID_ARGUMENT', `--lease must be NAME=N with NAME one of ${Object.keys(leaseDefaults).filter((k) => k !== 'enabled' && k !== 'actions').join(', ')}; got ${JSON.stringify(assignment)}`);
    }
    options.leases = { ...options.leases, [name]: Number(match[2]) };
  }
  if (v['on-unavailable'] !== undefined) options.onUnavailable = v['on-unavailable'] as NodeOptionsInput['onUnavailable'];
  if (v['gossip-preset'] !== undefined) options.gossipPreset = v['gossip-preset'] as NodeOptionsInput['gossipPreset'];
  if (v['cluster-name'] !== undefined) options.clusterName = v['cluster-name'];
  if (v['gossip-key-file'] !== undefined) options.gossipKeys = readLines('gossip-key-file', v['gossip-key-file']);
  // Separate serve processes on one host share the per-user key (cluster-key.ts); the node warns of a start without authentication.
  options.localClusterKey = true;
  if (v['insecure-no-cluster-key'] === true) options.insecureNoClusterKey = true;
  const tls = readNodeTls({ cert: v['tls-cert'], key: v['tls-key'], ca: v['tls-ca'] });
  if (tls !== undefined) options.tls = tls;
  if (v['api-token-file'] !== undefined) options.apiTokens = readLines('api-token-file', v['api-token-file']);
  if (v['admin-token-file'] !== undefined) options.adminTokens = readLines('admin-token-file', v['admin-token-file']);
  // An envoyproxy/ratelimit file given to --policies is served to Envoy, unchanged (docs/envoy.md).
  const policiesAreEnvoy = v.policies !== undefined && isEnvoyConfigFile(v.policies);
  const envoyPaths = [...(v['envoy-config'] ?? []), ...(policiesAreEnvoy && v.policies !== undefined ? [v.policies] : [])];
  if (v.policies !== undefined && !policiesAreEnvoy) options.policies = readPolicyFile(v.policies);
  const envoyLoad = envoyLoadOptionsOf(v);
  if (envoyPaths.length > 0) options.envoyConfig = readEnvoyConfig(envoyPaths, envoyLoad);
  options.envoy = envoySettingsOf(v);
  return {
    options,
    readyJson: v['ready-json'] === true,
    harness: v.harness === true,
    policyFile: v.policies !== undefined && !policiesAreEnvoy ? v.policies : undefined,
    envoyPaths,
    envoyLoad,
    logLevel: parseLogLevel(v['log-level'] ?? 'info'),
  };
}

/**
 * SIGTERM and SIGINT, handled from the very start of serve: the first asks for a graceful
 * stop (`requested` resolves with it; while the node starts, the stop waits for the start to
 * end), a second exits at once.
 */
function stopSignals(logger: Logger): { requested: Promise<string>; readonly received: string | undefined; started(): void; release(): void } {
  let received: string | undefined;
  let starting = true;
  let request = (_signal: string): void => undefined;
  const requested = new Promise<string>((resolve) => (request = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    if (received !== undefined) {
      logger.warn({ signal }, `second signal: exiting without finishing the ${starting ? 'start' : 'drain'}`);
      process.exit(1);
    }
    received = signal;
    if (starting) logger.info({ signal }, 'signal while starting: stopping as soon as the start ends (a second signal exits at once)');
    else logger.info({ signal }, 'draining and leaving (a second signal exits at once)');
    request(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return {
    requested,
    get received() {
      return received;
    },
    started: () => void (starting = false),
    release: () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    },
  };
}

/**
 * Runs a node until SIGTERM or SIGINT, then stops it gracefully (handoff, snapshot, leave).
 * The signals are handled from the start: one while the node starts (a join can take
 * joinTimeoutMs) stops it cleanly once the start ends. A second signal, or a stop that
 * overruns drainTimeoutMs by far, exits at once.
 */
export async function runServe(args: string[]): Promise<number> {
  const { options, readyJson, harness, policyFile, envoyPaths, envoyLoad, logLevel } = parseServeArgs(args);
  // Validated, and the node's id chosen, before anything starts: every log line names the node.
  const resolved = resolveNodeOptions(options);
  options.nodeId = resolved.nodeId;
  const logger = createLogger(logLevel, options.nodeId);
  const keyPlan = clusterKeyPlan(resolved);
  if (keyPlan.kind === 'local') logger.info({ keyFile: keyPlan.path }, 'cluster key: the per-user local key, shared by this user’s nodes on this host (a one-host cluster)');
  const signals = stopSignals(logger);
  const faults = harness ? enableHarness(options) : undefined;
  let node: RingLimitNode;
  try {
    node = await createNode(options);
  } catch (error) {
    signals.release();
    throw error;
  }
  signals.started();
  if (faults !== undefined) listenForFaultCommands(faults, () => node.stats());
  node.on('membership', (event, member) => {
    const fields = { event, member: member.nodeId, address: member.address, state: member.meta['state'] };
    if (event === 'update') logger.debug(fields, `member ${member.nodeId} updated`);
    else logger.info(fields, `member ${member.nodeId}: ${event}`);
  });
  node.on('ownership', (owners) => logger.info({ owners }, `ring: ${owners.join(', ')} (keys that moved are handed over)`));
  node.on('policies', (version, digest) => logger.info({ version, digest }, 'policies changed'));
  node.on('admin', (r) => logger.info({ op: r.op, action: r.action, key: r.key, remaining: r.remaining, by: r.by, remainingAfter: r.result.remaining }, `admin: ${r.op} ${r.action}/${r.key}`));
  node.on('warning', (error) => logger.warn({ err: error.message }, 'warning'));
  const loaded = node.stats().snapshot;
  if (loaded.setAsideTo !== '') logger.warn({ setAsideTo: loaded.setAsideTo }, 'the snapshot failed its checks and was set aside; starting without it');
  else if (options.dataDir !== undefined) logger.info({ keys: loaded.loadedKeys, dataDir: options.dataDir }, 'snapshot loaded');
  const watches = signals.received === undefined ? watchFiles(node, logger, policyFile, envoyPaths, envoyLoad) : [];
  // serve owns its process: with --expose-gc (the image and the systemd unit set it) an idle node drops a burst's garbage.
  if (signals.received === undefined) watches.push(new IdleGc());
  if (signals.received === undefined) {
    logger.info({ grpc: node.grpcAddress, gossip: node.gossipAddress, http: node.httpAddress, members: node.members().map((m) => m.nodeId), owners: node.owners(), policies: policyFile }, 'serving');
    if (readyJson) process.stdout.write(`${JSON.stringify({ nodeId: node.nodeId, grpc: node.grpcAddress, gossip: node.gossipAddress, ...(node.httpAddress === undefined ? {} : { http: node.httpAddress }) })}\n`);
  }
  await signals.requested;
  const watchdog = setTimeout(() => {
    logger.error({ drainTimeoutMs: node.options.drainTimeoutMs, graceMs: STOP_GRACE_MS }, 'stop overran drainTimeoutMs: exiting');
    process.exit(1);
  }, node.options.drainTimeoutMs + STOP_GRACE_MS);
  watchdog.unref();
  for (const watch of watches) watch.close();
  let code = 0;
  try {
    await node.stop({ graceful: true });
    logger.info({}, 'stopped');
  } catch (error) {
    logger.error({ err: (error as Error).message }, 'stopped, with an error');
    code = 1;
  }
  // serve owns its process, and nothing is left to do. Left to end by itself, Node's teardown can
  // spin forever in Environment::CleanupHandles (nodejs/node#47748): a node that had logged
  // "stopped" was at 100 % CPU there 30 s later, its watchdog timer never firing (test/package.test.ts).
  process.exit(code);
}

/** The --policies file and the Envoy configuration, re-read when they change. */
function watchFiles(node: RingLimitNode, logger: Logger, policyFile: string | undefined, envoyPaths: string[], envoyLoad: EnvoyLoadOptions): { close(): void }[] {
  const watches: { close(): void }[] = [];
  if (policyFile !== undefined) {
    const reloaded = (policies: Policies): void => {
      node.setPolicies(policies);
      logger.info({ file: policyFile }, 'policy file reloaded');
    };
    watches.push(watchPolicyFile(policyFile, POLICY_FILE_CHECK_MS, reloaded, (error) => logger.warn({ file: policyFile, err: error.message }, 'policy file not reloaded; the policies in force stay')));
  }
  if (envoyPaths.length > 0) {
    watches.push(
      watchEnvoyConfig(
        envoyPaths,
        envoyLoad,
        POLICY_FILE_CHECK_MS,
        (config) => {
          node.envoyConfig = config;
          logger.info({ paths: envoyPaths, domains: config.domainNames, loads: node.envoyStats.configLoadSuccess }, 'Envoy rate limit configuration reloaded');
        },
        (error) => {
          node.envoyStats.configLoadError++;
          logger.warn({ paths: envoyPaths, err: error.message, errors: node.envoyStats.configLoadError }, 'Envoy rate limit configuration not reloaded; the one in force stays');
        },
      ),
    );
  }
  return watches;
}

/** How often --policies FILE is checked for a change. */
const POLICY_FILE_CHECK_MS = 500;

/** How far past drainTimeoutMs a stop may run (the final snapshot, closing sockets) before serve exits anyway. */
const STOP_GRACE_MS = 10_000;
