import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderConfigReference } from '../src/cli/config-reference.js';

describe('docs/configuration.md', () => {
  it('is current: generated from the defaults objects (run npm run docs:config after changing one)', () => {
    expect(readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8')).toBe(renderConfigReference());
  });
});
