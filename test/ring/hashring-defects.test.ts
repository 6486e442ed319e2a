import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Ring } from '../../src/ring/index.js';
import { nodes } from './helpers.js';

interface DefectReport {
  movedPercent: number;
  movedBetweenOldPercent: number;
  protoGetReturned: string;
  addedToObjectPrototype: string[];
  plainObjectValue: unknown;
  laterGetThrew: string | null;
}

const script = fileURLToPath(new URL('./fixtures/hashring-defects.cjs', import.meta.url));

// Evidence for docs/decisions/0002-own-hash-ring.md. hashring pollutes Object.prototype,
// so it runs in a child process and cannot poison this one.
describe('npm hashring@3.2.0 defects (why src/ring exists)', () => {
  const report = JSON.parse(execFileSync(process.execPath, [script], { encoding: 'utf8' })) as DefectReport;

  it("get('__proto__') writes onto Object.prototype, then get('value') throws on any ring", () => {
    expect(report.addedToObjectPrototype).toEqual(['before', 'next', 'value']);
    expect(report.plainObjectValue).toBe(report.protoGetReturned);
    expect(report.laterGetThrew).toMatch(/^TypeError/);
    expect(Object.getOwnPropertyNames(Object.prototype)).not.toContain('next');
  });

  it('going from 6 to 7 servers moves keys between old servers too', () => {
    expect(report.movedBetweenOldPercent).toBeGreaterThan(1);
    expect(report.movedPercent).toBeGreaterThan(100 / 7 + 1);
  });

  it('our ring does neither: it keeps prototypes clean, and moves keys between old nodes only where balancing changed a count, far fewer', () => {
    const before = new Ring(nodes(6));
    const after = new Ring(nodes(7));
    let movedBetweenOld = 0;
    const count = 20_000;
    for (let i = 0; i < count; i++) {
      const key = `key-${i}`;
      const now = after.owner(key)!;
      const was = before.owner(key)!;
      if (now === was || now === 'node-7') continue;
      movedBetweenOld++;
      expect(before.pointCountOf(was) !== after.pointCountOf(was) || before.pointCountOf(now) !== after.pointCountOf(now)).toBe(true);
    }
    expect((movedBetweenOld / count) * 100).toBeLessThan(report.movedBetweenOldPercent / 2);
    const protoBefore = Object.getOwnPropertyNames(Object.prototype);
    for (const key of ['__proto__', 'value', 'next', 'constructor']) expect(after.has(after.owner(key) as string)).toBe(true);
    expect(Object.getOwnPropertyNames(Object.prototype)).toEqual(protoBefore);
  });
});
