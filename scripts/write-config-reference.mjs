// npm run docs:config: writes docs/configuration.md from the defaults objects, and docs/metrics.md from the registries (built first).
import { writeFileSync } from 'node:fs';
const { renderConfigReference } = await import('../dist/cli/config-reference.js');
writeFileSync(new URL('../docs/configuration.md', import.meta.url), renderConfigReference());
console.log('docs/configuration.md written');
const { renderMetricsReference } = await import('../dist/cli/metrics-reference.js');
writeFileSync(new URL('../docs/metrics.md', import.meta.url), renderMetricsReference());
console.log('docs/metrics.md written');
