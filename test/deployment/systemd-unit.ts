import { readFileSync } from 'node:fs';

/** What a test needs of a systemd unit: its ExecStart command line and its [Service] settings. */
export interface SystemdUnit {
  /** ExecStart split into words (the unit uses no quoting), continuation lines joined. */
  execStart: string[];
  /** Environment= assignments. */
  environment: Record<string, string>;
  /** Every other Key=Value of the unit, the last one winning. */
  settings: Record<string, string>;
}

export function readSystemdUnit(path: string): SystemdUnit {
  const lines = readFileSync(path, 'utf8')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#') && !line.startsWith(';') && !line.startsWith('['));
  const unit: SystemdUnit = { execStart: [], environment: {}, settings: {} };
  for (const line of lines) {
    const at = line.indexOf('=');
    if (at < 0) continue;
    const key = line.slice(0, at);
    const value = line.slice(at + 1).trim();
    if (key === 'ExecStart') unit.execStart = value.split(/\s+/);
    else if (key === 'Environment') {
      const eq = value.indexOf('=');
      unit.environment[value.slice(0, eq)] = value.slice(eq + 1);
    } else unit.settings[key] = value;
  }
  return unit;
}

/** systemd's time span ("30", "30s", "1min", "2min 30s") in milliseconds. */
export function timeSpanMs(value: string): number {
  let ms = 0;
  for (const [, n, unit] of value.matchAll(/(\d+)\s*(ms|s|sec|min|m|h)?/g)) {
    const factor = unit === 'ms' ? 1 : unit === 'min' || unit === 'm' ? 60_000 : unit === 'h' ? 3_600_000 : 1_000;
    ms += Number(n) * factor;
  }
  return ms;
}
