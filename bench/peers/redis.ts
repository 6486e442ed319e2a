/**
 * The peers a Node.js team deploys instead of ringlimit: rate-limiter-flexible's
 * RateLimiterRedis and a Lua token bucket, both over ioredis, on a redis-server this
 * bench starts on 127.0.0.1 and stops afterwards.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { portToTry } from '../port-range.js';
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';

export interface Contender {
  /** The name in tables. */
  name: string;
  /** A short name for chart legends. */
  short: string;
  call(key: string): Promise<unknown>;
  close(): Promise<void>;
  /** The processes that serve it besides the bench process (redis-server, `serve` nodes): their CPU is metered. */
  pids?: () => readonly number[];
}

export interface RedisServer {
  port: number;
  pid: number | undefined;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  // Outside the kernel's own range: redis-server binds it a moment later, and a port-0 pick could be taken meanwhile.
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = portToTry();
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port on 127.0.0.1 in 50 attempts');
}

/** A redis-server without persistence on a free port, or undefined (with the reason) when it is not installed. */
export async function startRedis(log: (line: string) => void): Promise<RedisServer | undefined> {
  if (spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).status !== 0) {
    log('redis-server is not installed: the Redis rows are skipped (Debian: apt-get install redis-server)');
    return undefined;
  }
  const port = await freePort();
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server did not start within 10 s')), 10_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited (${String(code)})`)));
  });
  child.stdout!.resume();
  return {
    port,
    pid: child.pid,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export function rateLimiterFlexibleRedis(port: number, limit: number, windowSeconds: number): Contender {
  const redis = new Redis({ port, host: '127.0.0.1', enableOfflineQueue: true });
  const limiter = new RateLimiterRedis({ storeClient: redis, points: limit, duration: windowSeconds, keyPrefix: `rlf${Date.now()}` });
  return {
    name: 'rate-limiter-flexible + Redis',
    short: 'rate-limiter-flexible + Redis',
    call: (key) => limiter.consume(key).catch((rejection: unknown) => rejection),
    close: async () => {
      redis.disconnect();
    },
  };
}

/** A token bucket in one Lua script (EVALSHA per call), as teams write it by hand. */
const TOKEN_BUCKET_LUA = `
local capacity = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + (now - ts) * per_ms)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 't', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / per_ms))
return allowed
`;

type TokenBucketRedis = Redis & { tokenBucket(key: string, capacity: number, perMs: number, nowMs: number): Promise<number> };

export function luaTokenBucketRedis(port: number, limit: number, windowSeconds: number): Contender {
  const redis = new Redis({ port, host: '127.0.0.1' }) as TokenBucketRedis;
  redis.defineCommand('tokenBucket', { numberOfKeys: 1, lua: TOKEN_BUCKET_LUA });
  const perMs = limit / (windowSeconds * 1000);
  const prefix = `lua${Date.now()}:`;
  return {
    name: 'Lua token bucket + Redis (ioredis)',
    short: 'Lua token bucket + Redis',
    call: (key) => redis.tokenBucket(prefix + key, limit, perMs, Date.now()),
    close: async () => {
      redis.disconnect();
    },
  };
}
