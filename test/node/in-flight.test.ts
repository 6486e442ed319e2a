import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InFlightTable } from '../../src/node/routing/in-flight.js';

interface Item {
  id: number;
  name: string;
}

const item = (name: string): Item => ({ id: 0, name });

describe('InFlightTable: requests awaiting an answer, by id, in send order', () => {
  it('gives increasing ids, takes each item once, and answers oldest() in send order', () => {
    const table = new InFlightTable<Item>(10);
    const [a, b, c] = [item('a'), item('b'), item('c')];
    expect([table.add(a), table.add(b), table.add(c)]).toEqual([1, 2, 3]);
    expect(a.id).toBe(1);
    expect(table.size).toBe(3);
    expect(table.take(2)).toBe(b);
    expect(table.take(2)).toBeUndefined();
    expect(table.take(99)).toBeUndefined();
    expect(table.oldest()).toBe(a);
    table.take(1);
    expect(table.oldest()).toBe(c);
    table.take(3);
    expect(table.oldest()).toBeUndefined();
    expect(table.size).toBe(0);
  });

  it('skips a slot an old item still holds a lap later, and never answers for the wrong id', () => {
    const table = new InFlightTable<Item>(4); // 1,024 slots: ids 1 and 1,025 share a slot
    const old = item('old');
    table.add(old);
    for (let i = 0; i < 2_000; i++) table.take(table.add(item(`x${i}`)));
    expect(table.take(old.id + 1_024)).toBeUndefined();
    expect(table.oldest()).toBe(old);
    const ids = new Set<number>();
    for (let i = 0; i < 3; i++) ids.add(table.add(item(`y${i}`)));
    expect([...ids].every((id) => (id & 1_023) !== (old.id & 1_023))).toBe(true);
    expect(table.take(old.id)).toBe(old);
  });

  it('grows to hold what it is allowed to, and refuses more', () => {
    const table = new InFlightTable<Item>(5_000);
    const items = Array.from({ length: 5_000 }, (_, i) => item(`i${i}`));
    for (const it of items) table.add(it);
    expect(table.size).toBe(5_000);
    expect(() => table.add(item('one too many'))).toThrow(RangeError);
    expect(items.every((it) => table.take(it.id) === it)).toBe(true);
    expect(table.values()).toEqual([]);
  });

  it('behaves like a Map in insertion order under any sequence of adds and takes (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constant<'add'>('add'), fc.nat(50)), { maxLength: 400 }), (ops) => {
        const table = new InFlightTable<Item>(64);
        const model = new Map<number, Item>();
        let n = 0;
        for (const op of ops) {
          if (op === 'add') {
            if (model.size >= 64) continue;
            const it = item(`n${n++}`);
            const id = table.add(it);
            expect(model.has(id)).toBe(false);
            model.set(id, it);
          } else {
            // Take the op-th oldest live item, or an id nobody holds.
            const ids = [...model.keys()];
            const id = ids[op] ?? (ids.at(-1) ?? 0) + 1 + op;
            expect(table.take(id)).toBe(model.get(id));
            model.delete(id);
          }
          expect(table.size).toBe(model.size);
          expect(table.oldest()).toBe(model.values().next().value);
        }
        expect(new Set(table.values())).toEqual(new Set(model.values()));
      }),
      { numRuns: 200 },
    );
  });
});
