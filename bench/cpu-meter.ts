/**
 * CPU time per process while a measurement runs: this process (the load generator, a
 * client, an embedded member) through process.cpuUsage(), and the processes that serve the
 * contender (`serve` nodes, redis-server) from /proc/<pid>/stat — user + system, in clock
 * ticks of 10 ms, so a run should last a second or more. Linux only: elsewhere the servers
 * read 0 and the tables say so.
 */
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100;

/** User + system CPU seconds of `pid`, or undefined when it cannot be read. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

export interface CpuReading {
  wallSeconds: number;
  /** This process. */
  selfSeconds: number;
  /** Each metered server process, in the order given. */
  serverSeconds: number[];
}

/** Meters this process and `pids` from start() to stop(). */
export class CpuMeter {
  private self = process.cpuUsage();
  private servers: (number | undefined)[] = [];
  private startedMs = 0;

  constructor(private readonly pids: readonly number[]) {}

  start(): void {
    this.servers = this.pids.map(processCpuSeconds);
    this.self = process.cpuUsage();
    this.startedMs = performance.now();
  }

  stop(): CpuReading {
    const self = process.cpuUsage(this.self);
    const wallSeconds = (performance.now() - this.startedMs) / 1000;
    const serverSeconds = this.pids.map((pid, i) => {
      const now = processCpuSeconds(pid);
      const before = this.servers[i];
      return now === undefined || before === undefined ? 0 : Math.max(0, now - before);
    });
    return { wallSeconds, selfSeconds: (self.user + self.system) / 1e6, serverSeconds };
  }
}

/** CPU µs per decision: the bench process, and the server processes together. */
export interface CpuPerDecision {
  clientUs: number;
  serversUs: number;
}

export function perDecision(reading: CpuReading, decisions: number): CpuPerDecision {
  const n = Math.max(1, decisions);
  return { clientUs: (1e6 * reading.selfSeconds) / n, serversUs: (1e6 * reading.serverSeconds.reduce((a, b) => a + b, 0)) / n };
}
