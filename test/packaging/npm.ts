import { execFile } from 'node:child_process';
import { dirname } from 'node:path';

/**
 * The environment for an npm run by a test: this process's, without the lower-case npm_*
 * variables `npm test` sets (npm_config_prefix, npm_config_local_prefix, … would point the
 * child npm at this repository; a user's own NPM_CONFIG_* stay), and with this Node first on PATH.
 */
export function cleanNpmEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('npm_')) env[name] = value;
  env['PATH'] = `${dirname(process.execPath)}:${process.env['PATH'] ?? ''}`;
  return { ...env, ...extra };
}

export interface Run {
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; rejects with its output when it fails or overruns timeoutMs. */
export function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd: options.cwd, env: options.env ?? cleanNpmEnv(), timeout: options.timeoutMs, maxBuffer: 32 * 1024 * 1024, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`${command} ${args.join(' ')} (in ${options.cwd}) failed: ${error.message}\n${stdout}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** npm with the local registry and a cache of its own (the user's cache is only read, by the registry). */
export function npm(args: string[], options: { cwd: string; registry: string; cache: string; timeoutMs: number }): Promise<Run> {
  return run('npm', [...args, '--registry', options.registry, '--cache', options.cache, '--no-audit', '--no-fund', '--no-update-notifier', '--loglevel', 'warn'], {
    cwd: options.cwd,
    timeoutMs: options.timeoutMs,
  });
}
