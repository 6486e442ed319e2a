import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { watchEnvoyConfig } from '../../src/cli/serve-envoy.js';
import type { EnvoyDescriptors } from '../../src/envoy/descriptors.js';

const CHECK_MS = 500;

describe('watchEnvoyConfig', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('reads a rewritten directory only once it stayed the same for one check: never the empty directory between the old files and the new', () => {
    vi.useFakeTimers();
    const dir = mkdtempSync(join(tmpdir(), 'ringlimit-watch-'));
    try {
      writeFileSync(join(dir, 'old.yaml'), 'domain: old\n');
      const loads: string[][] = [];
      const errors: string[] = [];
      const watch = watchEnvoyConfig([dir], {}, CHECK_MS, (config: EnvoyDescriptors) => loads.push(config.domainNames), (e) => errors.push(e.message));
      rmSync(join(dir, 'old.yaml')); // a rewrite caught half-way by a check…
      vi.advanceTimersByTime(CHECK_MS);
      writeFileSync(join(dir, 'new.yaml'), 'domain: new\n'); // …and finished before the next
      vi.advanceTimersByTime(CHECK_MS);
      expect(loads).toEqual([]); // changed again since the last check: not read yet
      vi.advanceTimersByTime(CHECK_MS);
      expect(loads).toEqual([['new']]);
      vi.advanceTimersByTime(5 * CHECK_MS);
      expect(loads).toEqual([['new']]); // nothing changed: nothing read
      expect(errors).toEqual([]);
      watch.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
