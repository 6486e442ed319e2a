/** Types shared by the chaos harness: the runner, the cluster, the scenarios and the report. */
import type { LoadSpec } from './loadgen.js';
import type { Accuracy } from './model.js';

export interface ChaosOptions {
  scenarios: string[];
  nodes: number;
  /** Load per scenario: warm-up (keys reach their limits), then the fault, then recovery. */
  warmupMs: number;
  afterMs: number;
  ratePerSec: number;
  keyCount: number;
  limit: number;
  distribution: LoadSpec['distribution'];
  seed: number;
  out: string;
  log: (line: string) => void;
  /** A live status line, rewritten in place ('' clears it). */
  progress: (line: string) => void;
}

/** Tunables of a ChaosCluster; every wait it does is bounded by one of these. */
export interface ClusterOptions {
  /** The built CLI that runs `serve --harness` (dist/cli.js). */
  cliPath: string;
  gossipPreset: 'lan' | 'test';
  /** Start nodes in harness mode (fault commands on stdin). Off for plain nodes, as in the benchmarks. */
  harness: boolean;
  /** More `serve` flags for every node (e.g. `--replicas 2`, `--data-dir DIR`). */
  serveArgs: string[];
  /** Until a started node prints its ready line. */
  bootTimeoutMs: number;
  /** Until a SIGTERM-ed node has drained and exited. */
  gracefulStopTimeoutMs: number;
  /** Until a SIGKILL-ed node has exited. */
  killExitTimeoutMs: number;
  /** One health probe of one node. */
  healthTimeoutMs: number;
  /** The API token the health probes send, when the nodes ask for one (--api-token-file). */
  apiToken: string | undefined;
  pollIntervalMs: number;
}

/** The operations a scenario (or a test) applies to a cluster; ChaosCluster implements them. */
export interface ClusterControl {
  readonly size: number;
  /** SIGKILL; the node stays down until restart(i). */
  kill(i: number): void;
  /** SIGSTOP: the process freezes but its sockets stay open. */
  pause(i: number): void;
  /** SIGCONT after pause(i). */
  resume(i: number): void;
  /** SIGTERM, then waits for the drain and exit; the node stays down until restart(i). */
  stopGracefully(i: number): Promise<void>;
  /**
   * Starts a down node again on its old ports, joining the live ones; with none up it starts
   * alone (no seeds: a dead seed would hold its start for the gossip join timeout), and the
   * next restarts join it.
   */
  restart(i: number): Promise<void>;
  /** Starts every down node at once on its old ports, each joining all the others. */
  restartAll(): Promise<void>;
  partition(left: number[], right: number[]): void;
  /** `from` cannot send to `to` (gossip and peer frames); the other way still works. */
  partitionOneWay(from: number[], to: number[]): void;
  heal(): void;
  clock(i: number, offsetMs: number, driftPpm: number): void;
  /** Ms until `check` holds (polled), or -1 if it did not within timeoutMs. */
  until(check: () => Promise<boolean>, timeoutMs: number): Promise<number>;
  /** Whether every node that is up reports exactly `members` members. */
  allLiveSee(members: number): Promise<boolean>;
  /** Whether every node that is up has exactly `owners` owners on its ring (joined nodes are owners once active). */
  allLiveOwn(owners: number): Promise<boolean>;
  /** gRPC host:port of every node, in index order. */
  grpcAddresses(): string[];
  /** HTTP host:port of every node that serves HTTP (serve --http-port), in index order. */
  httpAddresses(): (string | undefined)[];
}

/** What a scenario may need to know about its run besides the cluster. */
export interface ScenarioContext {
  /** The load's keys are `${keyPrefix}${i}` for i < keyCount, under `action`. */
  keyPrefix: string;
  keyCount: number;
  action: string;
  /** The load's limit per key and window. */
  limit: number;
}

export interface ScenarioOutcome {
  /** Time from the fault until every surviving node stopped listing a dead member. */
  detectMs?: number;
  /** Time from the end of the fault until every node lists every member again. */
  stableMs?: number;
  /** Peer streams of a stranger that the nodes refused (stranger-flood). */
  refusedStreams?: number;
  /** A bystander's calls before and while an attack ran (hostile-callers). */
  bystander?: { steadyP99Ms: number; attackP99Ms: number; steadyCalls: number; attackCalls: number; errors: number };
}

/** Lets a scenario mark when its fault is over, so accuracy is split into before / during / after. */
export interface FaultMarks {
  faultEnd(): void;
}

/** A scenario's own load, replacing the run's options for it. */
export interface ScenarioLoad {
  keyCount: number;
  limit: number;
  global: boolean;
  /** false: each load generator asks its preferred node rather than each key's owner. */
  ringAware: boolean;
  /** The bearer token the load sends (the scenario's nodes ask for it). */
  apiToken?: string;
}

/** What a pass judgement may need besides the accuracy: the load it ran under. */
export interface ScenarioRun {
  nodes: number;
  ratePerSec: number;
  keyCount: number;
}

export interface Scenario {
  name: string;
  load?: Partial<ScenarioLoad>;
  /** The target as the issue states it. */
  target: string;
  /** More `serve` flags for this scenario's nodes; `dataDir` is a fresh directory the runner removes afterwards. */
  serveArgs?(dataDir: string): string[];
  /** Injects the fault and undoes it; returns the timings it measured. */
  run(cluster: ClusterControl, marks: FaultMarks, context: ScenarioContext): Promise<ScenarioOutcome>;
  pass(a: Accuracy, o: ScenarioOutcome, run: ScenarioRun): boolean;
}

/** Allowed decisions per second of the run, with the fault marked and the exact total for comparison. */
export interface AllowedSeries {
  allowed: number[];
  faultAtS: number;
  faultEndS: number;
  /** What an exact limiter allows in all: keys × limit. */
  exactTotal: number;
  /** Cumulative allowed by the end of each second. */
  cumulative: number[];
}

export interface ScenarioResult {
  key: string;
  name: string;
  target: string;
  pass: boolean;
  accuracy: Accuracy;
  outcome: ScenarioOutcome;
  durationMs: number;
  series: AllowedSeries;
}
