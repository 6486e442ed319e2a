import { describe, expect, it } from 'vitest';
import { CONFIG_MEANINGS } from '../src/cli/config-meanings.js';
import { configRows } from '../src/cli/config-reference.js';

describe('docs/configuration.md: what each option means', () => {
  it('every option of every section has a meaning (add it to src/cli/config-meanings.ts with its default)', () => {
    const missing = configRows().filter((row) => row.meaning.trim() === '').map((row) => `${row.section}.${row.option}`);
    expect(missing).toEqual([]);
  });

  it('no meaning is left for an option that no longer exists', () => {
    const rows = new Set(configRows().map((row) => `${row.section}.${row.option}`));
    const stale = Object.entries(CONFIG_MEANINGS).flatMap(([section, meanings]) => Object.keys(meanings).map((option) => `${section}.${option}`)).filter((id) => !rows.has(id));
    expect(stale).toEqual([]);
  });
});
