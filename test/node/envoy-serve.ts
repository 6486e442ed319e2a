import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { builtCli } from '../chaos/built-cli.js';
import { envoyRateLimitClient } from '../../src/node/api/envoy-service.js';

/**
 * A real `ringlimit serve` process (the built CLI) serving Envoy's RateLimitService from a
 * configuration directory, with a gRPC client that sends what Envoy sends, its /metrics,
 * and its log: what the ported envoyproxy/ratelimit tests run against.
 */

export interface Status {
  code: string;
  currentLimit?: { name?: string; requestsPerUnit?: number; unit?: string };
  limitRemaining?: number;
  durationUntilReset?: { seconds?: number; nanos?: number };
}
export interface StructValue {
  fields?: Record<string, { stringValue?: string; numberValue?: number; boolValue?: boolean; structValue?: StructValue; listValue?: { values?: { stringValue?: string; structValue?: StructValue }[] } }>;
}
export interface Response {
  overallCode: string;
  statuses?: Status[];
  responseHeadersToAdd?: { key: string; value: string }[];
  dynamicMetadata?: StructValue;
}

type Entry = [string, string];
export interface Descriptor {
  entries: { key: string; value: string }[];
  limit?: { requestsPerUnit: number; unit: string };
  hitsAddend?: { value: number };
}

/** A descriptor of key/value entries, as Envoy builds them. */
export const d = (...entries: Entry[]): Descriptor => ({ entries: entries.map(([key, value]) => ({ key, value })) });

/** The peer's common.NewRateLimitRequest: a domain, descriptors of entries, and hits_addend. */
export const request = (domain: string, descriptors: Descriptor[], hitsAddend = 1): object => ({ domain, descriptors, hitsAddend });

type Client = grpc.Client & { shouldRateLimit: (req: object, cb: (err: grpc.ServiceError | null, res?: Response) => void) => void };

interface LogLine {
  msg?: string;
  err?: string;
  loads?: number;
  errors?: number;
}

export interface EnvoyServe {
  readonly configDir: string;
  ask(req: object): Promise<{ error: grpc.ServiceError | null; response: Response | undefined }>;
  /** Asks, expecting an answer (throws the error otherwise). */
  answer(req: object): Promise<Response>;
  /** Replaces the configuration directory's files and waits until the node has read them: undefined, or the load error it logged. */
  load(files: Record<string, string>): Promise<string | undefined>;
  /** The value of ringlimit_envoy_limit_hits_total{key, stat} (0 when absent). */
  stat(key: string, stat: string): Promise<number>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 20_000;
const RELOAD_TIMEOUT_MS = 10_000;

/** Prometheus text: the value of one series (label values unescaped). */
function seriesValue(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const found: Record<string, string> = {};
    const labelText = /^[^{ ]*\{(.*)\} /.exec(line)?.[1] ?? '';
    for (const m of labelText.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) found[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

/** Starts `serve` with `flags`, the configuration directory holding `files` (undefined: serve without --envoy-config). */
export async function startEnvoyServe(files: Record<string, string> | undefined, flags: string[] = []): Promise<EnvoyServe> {
  const configDir = mkdtempSync(join(tmpdir(), 'ringlimit-envoy-peer-'));
  let generation = 0;
  const write = (all: Record<string, string>): void => {
    for (const name of readdirSync(configDir)) rmSync(join(configDir, name), { recursive: true, force: true });
    generation++;
    for (const [name, text] of Object.entries(all)) {
      // Written aside under a dot-name (skipped by the reader), then renamed: never read half-written.
      const aside = join(configDir, `.${generation}-${name}`);
      writeFileSync(aside, text);
      renameSync(aside, join(configDir, name));
    }
  };
  if (files !== undefined) write(files);
  const config = files === undefined ? [] : ['--envoy-config', configDir];
  const child: ChildProcess = spawn(process.execPath, [builtCli(), 'serve', '--port', '0', '--gossip-port', '0', '--http-port', '0', '--ready-json', '--log-level', 'info', ...config, ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log: LogLine[] = [];
  const stderr: string[] = [];
  let pending = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      stderr.push(line);
      try {
        log.push(JSON.parse(line) as LogLine);
      } catch {
        // not a log line
      }
    }
  });
  const ready = await new Promise<{ grpc: string; http: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve not ready in ${READY_TIMEOUT_MS} ms: ${stderr.join('\n')}`)), READY_TIMEOUT_MS);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(JSON.parse(out.slice(0, nl)) as { grpc: string; http: string });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${String(code)}: ${stderr.join('\n')}`));
    });
  });
  const Ctor = envoyRateLimitClient();
  const client = new Ctor(ready.grpc, grpc.credentials.createInsecure()) as unknown as Client;
  const ask = (req: object) => new Promise<{ error: grpc.ServiceError | null; response: Response | undefined }>((resolve) => client.shouldRateLimit(req, (error, response) => resolve({ error, response })));
  const metricsText = async (): Promise<string> => (await fetch(`http://${ready.http}/metrics`)).text();
  const counts = () => ({
    loads: Math.max(0, ...log.filter((l) => l.loads !== undefined).map((l) => l.loads!)),
    errors: Math.max(0, ...log.filter((l) => l.errors !== undefined).map((l) => l.errors!)),
  });
  return {
    configDir,
    ask,
    answer: async (req) => {
      const { error, response } = await ask(req);
      if (error !== null) throw error;
      return response!;
    },
    load: async (all) => {
      const before = counts();
      write(all);
      const deadline = Date.now() + RELOAD_TIMEOUT_MS;
      for (;;) {
        const now = counts();
        if (now.loads > before.loads) return undefined;
        if (now.errors > before.errors) return log.filter((l) => l.errors === now.errors).at(-1)?.err;
        if (Date.now() > deadline) throw new Error(`serve did not reload ${configDir} in ${RELOAD_TIMEOUT_MS} ms`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    stat: async (key, stat) => seriesValue(await metricsText(), 'ringlimit_envoy_limit_hits_total', { key, stat }),
    metric: async (name, labels = {}) => seriesValue(await metricsText(), name, labels),
    stop: async () => {
      client.close();
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
      rmSync(configDir, { recursive: true, force: true });
    },
  };
}

/** Runs `serve` with a bad configuration: its exit code and what it printed on stderr. */
export function serveRefusing(paths: string[], flags: string[] = []): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [builtCli(), 'serve', '--port', '0', '--gossip-port', '0', ...paths.flatMap((p) => ['--envoy-config', p]), ...flags], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), READY_TIMEOUT_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

/**
 * Waits, when less than `neededMs` is left of the current fixed window of `windowMs`, for
 * the next one: a sequence of hits compared on one counter must not straddle a boundary.
 */
export async function roomInWindow(windowMs: number, neededMs: number): Promise<void> {
  const left = windowMs - (Date.now() % windowMs);
  if (left < neededMs) await new Promise((r) => setTimeout(r, left + 50));
}
