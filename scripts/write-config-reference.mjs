// npm run docs:config: writes docs/configuration.md from the defaults objects (built first).
import { writeFileSync } from 'node:fs';
const { renderConfigReference } = await import('../dist/cli/config-reference.js');
writeFileSync(new URL('../docs/configuration.md', import.meta.url), renderConfigReference());
console.log('docs/configuration.md written');
