import { spawn, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { freePort } from '../../bench/peers/redis.js';

/** A real redis-server on 127.0.0.1 (no persistence), started and stopped by a test. */
export class RedisProcess {
  private child: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly extraArgs: readonly string[],
  ) {}

  static async start(options: { port?: number; args?: readonly string[] } = {}): Promise<RedisProcess> {
    const server = new RedisProcess(options.port ?? (await freePort()), options.args ?? []);
    await server.restart();
    return server;
  }

  /** Starts it (again, on the same port: a restart loses every key and every loaded script). */
  async restart(): Promise<void> {
    await this.stop();
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...this.extraArgs], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(() => reject(new Error(`redis-server did not start within 10 s: ${output}`)), 10_000);
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(new Error(`redis-server could not start (Debian: apt-get install redis-server): ${error.message}`));
      });
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${String(code)}): ${output}`));
      });
    });
    child.stdout!.resume();
    child.stderr!.resume();
  }

  stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child === undefined || child.exitCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }
}

/**
 * A redis-server and an ioredis client to it for one test file: started before its tests,
 * stopped after. `client()` is valid inside the tests.
 */
export function redisForTests(): { client: () => Redis } {
  let server: RedisProcess | undefined;
  let client: Redis | undefined;
  beforeAll(async () => {
    server = await RedisProcess.start();
    client = new Redis({ port: server.port, host: '127.0.0.1' });
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });
  return {
    client: () => {
      if (client === undefined) throw new Error('redisForTests: the server starts in beforeAll');
      return client;
    },
  };
}

/** fast-check options of the Redis property tests: PROPERTY_RUNS runs (300), replayable with PROPERTY_SEED. */
export function propertyOptions(runsPerUnit = 1): { numRuns: number; seed?: number } {
  const runs = Number(process.env['PROPERTY_RUNS'] ?? 300) * runsPerUnit;
  return process.env['PROPERTY_SEED'] === undefined ? { numRuns: runs } : { numRuns: runs, seed: Number(process.env['PROPERTY_SEED']) };
}

/**
 * How long the parity tests give Redis to answer: not what they test, and a shared machine
 * (the suite's other processes on two cores) can delay a reply past the store's 200 ms default.
 */
export const PARITY_TIMEOUT_MS = 10_000;
