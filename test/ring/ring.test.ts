import { describe, expect, it } from 'vitest';
import { RingLimitError } from '../../src/common/errors.js';
import { Ring, hashKey, ringDefaults, ringLimits } from '../../src/ring/index.js';
import { nodes, randomKeys } from './helpers.js';

const keys = randomKeys(2000, 7);

describe('Ring basics', () => {
  const ring = new Ring([{ nodeId: 'c' }, { nodeId: 'a' }, { nodeId: 'b', weight: 2 }]);

  it('exposes members sorted by nodeId, frozen, with default weights filled in', () => {
    expect(ring.members).toEqual([
      { nodeId: 'a', weight: 1 },
      { nodeId: 'b', weight: 2 },
      { nodeId: 'c', weight: 1 },
    ]);
    expect(ring.size).toBe(3);
    expect(ring.vnodesPerNode).toBe(ringDefaults.vnodesPerNode);
    // 4 base points per vnode, a few more or fewer after balancing.
    expect(Math.abs(ring.pointCount / (4 * ringDefaults.vnodesPerNode) - 1)).toBeLessThan(0.05);
    expect(ring.pointCountOf('b')).toBeGreaterThan(ring.pointCountOf('a'));
    expect(ring.pointCountOf('nobody')).toBe(0);
    expect(Object.isFrozen(ring)).toBe(true);
    expect(Object.isFrozen(ring.members)).toBe(true);
    expect(Object.isFrozen(ring.members[0])).toBe(true);
  });

  it('answers membership questions', () => {
    expect(ring.has('b')).toBe(true);
    expect(ring.has('d')).toBe(false);
    expect(ring.has('__proto__')).toBe(false);
    expect(ring.has('constructor')).toBe(false);
    expect(ring.indexOf('c')).toBe(2);
    expect(ring.indexOf('toString')).toBe(-1);
    expect(ring.nodeIdAt(1)).toBe('b');
    expect(ring.nodeIdAt(3)).toBeUndefined();
    expect(ring.nodeIdAt(-1)).toBeUndefined();
  });

  it('owner, ownerIndex and ownerIndexOfHash agree', () => {
    for (const key of keys) {
      const index = ring.ownerIndex(key);
      expect(ring.owner(key)).toBe(ring.nodeIdAt(index));
      expect(ring.ownerIndexOfHash(hashKey(key))).toBe(index);
      expect(ring.ownerIndexOfHash(hashKey(key) | 0)).toBe(index);
    }
  });

  it('owners are the owner then distinct replicas, at most size of them', () => {
    for (const key of keys) {
      const all = ring.owners(key, 5);
      expect(all).toHaveLength(3);
      expect(new Set(all).size).toBe(3);
      expect(all[0]).toBe(ring.owner(key));
      expect(ring.owners(key, 2)).toEqual(all.slice(0, 2));
      expect(ring.owners(key, 0)).toEqual([]);
    }
  });

  it('ownersInto writes into the caller array and returns the count', () => {
    const out: string[] = ['stale', 'stale', 'stale', 'stale'];
    for (const key of keys.slice(0, 100)) {
      expect(ring.ownersInto(key, 2, out)).toBe(2);
      expect(out.slice(0, 2)).toEqual(ring.owners(key, 2));
      expect(out).toHaveLength(4);
    }
  });

  it('rejects non-string keys with a typed error instead of routing them like the empty key', () => {
    for (const key of [undefined, null, 42, {}]) {
      expect(() => ring.owner(key as unknown as string)).toThrowError(/key: must be a string/);
      expect(() => hashKey(key as unknown as string)).toThrowError(RingLimitError);
    }
  });

  it('rejects a bad replica count with a typed error', () => {
    for (const count of [-1, 1.5, Number.NaN]) {
      expect(() => ring.owners('k', count)).toThrowError(RingLimitError);
    }
  });

  it('does not depend on the order members are given in', () => {
    const shuffled = new Ring([{ nodeId: 'b', weight: 2 }, { nodeId: 'c' }, { nodeId: 'a' }]);
    for (const key of keys) expect(shuffled.owners(key, 3)).toEqual(ring.owners(key, 3));
  });

  it('gives a node of weight 2 about twice the keys', () => {
    const counts = new Map<string, number>();
    for (const key of randomKeys(40_000, 3)) {
      const owner = ring.owner(key) as string;
      counts.set(owner, (counts.get(owner) ?? 0) + 1);
    }
    const share = (counts.get('b') ?? 0) / 40_000;
    expect(share).toBeGreaterThan(0.47);
    expect(share).toBeLessThan(0.53);
  });
});

describe('an empty ring', () => {
  const empty = new Ring([]);

  it('owns nothing: owner is undefined, ownerIndex -1, owners empty', () => {
    expect(empty.size).toBe(0);
    expect(empty.pointCount).toBe(0);
    expect(empty.owner('k')).toBeUndefined();
    expect(empty.ownerIndex('k')).toBe(-1);
    expect(empty.ownerIndexOfHash(123)).toBe(-1);
    expect(empty.owners('k', 3)).toEqual([]);
    expect(empty.ownersInto('k', 3, [])).toBe(0);
  });
});

describe('plain-string keys', () => {
  const ring = new Ring(nodes(5));
  const special = [
    '__proto__',
    'constructor',
    'hasOwnProperty',
    'toString',
    'valueOf',
    'prototype',
    'value',
    'next',
    '',
    ' ',
    '\t\n',
    '\u00a0',
    '\u0000',
    '\ud800',
    'x'.repeat(1 << 20),
  ];

  it('route like any other key and never touch prototypes', () => {
    const protoBefore = Object.getOwnPropertyNames(Object.prototype).sort();
    for (const key of special) {
      const owner = ring.owner(key);
      expect(typeof owner).toBe('string');
      expect(ring.has(owner as string)).toBe(true);
      expect(owner).toBe(ring.nodeIdAt(ring.ownerIndexOfHash(hashKey(key))));
      expect(ring.owners(key, 3)).toHaveLength(3);
      expect(ring.owner(key)).toBe(owner);
    }
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(protoBefore);
    expect(({} as Record<string, unknown>)['value']).toBeUndefined();
  });
});

describe('withMember / withoutMember', () => {
  const ring = new Ring(nodes(3), { vnodesPerNode: 256 });

  it('build new rings and leave the original untouched', () => {
    const grown = ring.withMember({ nodeId: 'node-4' });
    expect(grown).not.toBe(ring);
    expect(grown.size).toBe(4);
    expect(grown.vnodesPerNode).toBe(256);
    expect(ring.size).toBe(3);
    const shrunk = grown.withoutMember('node-1');
    expect(shrunk.members.map((m) => m.nodeId)).toEqual(['node-2', 'node-3', 'node-4']);
    expect(grown.has('node-1')).toBe(true);
  });

  it('replace the weight of an existing member', () => {
    const heavier = ring.withMember({ nodeId: 'node-2', weight: 3 });
    expect(heavier.members).toEqual([
      { nodeId: 'node-1', weight: 1 },
      { nodeId: 'node-2', weight: 3 },
      { nodeId: 'node-3', weight: 1 },
    ]);
  });

  it('withoutMember of an unknown node returns the same ring', () => {
    expect(ring.withoutMember('nope')).toBe(ring);
  });

  it('validate the new member', () => {
    expect(() => ring.withMember({ nodeId: '' })).toThrowError(/members\[3\]\.nodeId: must be a non-empty string/);
    expect(() => ring.withMember(null as unknown as { nodeId: string })).toThrowError(RingLimitError);
  });
});

describe('validation', () => {
  const tooLongId = 'n'.repeat(ringLimits.maxNodeIdBytes + 1);
  const tooLongInUtf8 = 'é'.repeat(ringLimits.maxNodeIdBytes / 2 + 1);
  const bad: [string, unknown, unknown, string, RegExp][] = [
    ['members not an array', 'node-1', undefined, 'members', /must be an array/],
    ['member not an object', ['node-1'], undefined, 'members[0]', /must be an object/],
    ['empty nodeId', [{ nodeId: '' }], undefined, 'members[0].nodeId', /non-empty string/],
    ['numeric nodeId', [{ nodeId: 7 }], undefined, 'members[0].nodeId', /non-empty string/],
    ['nodeId too long', [{ nodeId: tooLongId }], undefined, 'members[0].nodeId', /at most 256 bytes/],
    ['nodeId too long in UTF-8', [{ nodeId: tooLongInUtf8 }], undefined, 'members[0].nodeId', /256 bytes in UTF-8/],
    ['nodeId with a lone surrogate', [{ nodeId: 'a\ud800' }], undefined, 'members[0].nodeId', /lone surrogates/],
    ['duplicate nodeId', [{ nodeId: 'a' }, { nodeId: 'b' }, { nodeId: 'a' }], undefined, 'members', /"a" appears more than once/],
    ['weight zero', [{ nodeId: 'a', weight: 0 }], undefined, 'members[0].weight', /> 0/],
    ['weight negative', [{ nodeId: 'a', weight: -1 }], undefined, 'members[0].weight', /> 0/],
    ['weight NaN', [{ nodeId: 'a', weight: Number.NaN }], undefined, 'members[0].weight', /finite/],
    ['weight Infinity', [{ nodeId: 'a', weight: Infinity }], undefined, 'members[0].weight', /finite/],
    ['weight string', [{ nodeId: 'a', weight: '2' }], undefined, 'members[0].weight', /finite number/],
    ['weight too large', [{ nodeId: 'a', weight: 65 }], undefined, 'members[0].weight', /at most 64/],
    ['options not an object', [], 5, 'options', /must be an object/],
    ['vnodes zero', [], { vnodesPerNode: 0 }, 'vnodesPerNode', /integer from 1 to 65536/],
    ['vnodes fractional', [], { vnodesPerNode: 1.5 }, 'vnodesPerNode', /integer/],
    ['vnodes too many', [], { vnodesPerNode: 65_537 }, 'vnodesPerNode', /65536/],
    [
      'too many members',
      nodes(ringLimits.maxMembers + 1),
      { vnodesPerNode: 1 },
      'members',
      /at most 4096 entries, got 4097/,
    ],
    [
      'too many points',
      [{ nodeId: 'a', weight: 64 }, { nodeId: 'b', weight: 64 }, { nodeId: 'c', weight: 1 }],
      { vnodesPerNode: 65_536 },
      'members',
      /8388608 allowed/,
    ],
  ];

  it.each(bad)('rejects %s', (_name, members, options, field, message) => {
    let caught: unknown;
    try {
      new Ring(members as never, options as never);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(RingLimitError);
    const error = caught as RingLimitError;
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.field).toBe(field);
    expect(error.message).toMatch(message);
  });

  it('accepts the documented extremes', () => {
    expect(new Ring(nodes(ringLimits.maxMembers), { vnodesPerNode: 1 }).size).toBe(ringLimits.maxMembers);
    expect(new Ring([{ nodeId: 'a', weight: ringLimits.maxWeight }], { vnodesPerNode: 16 }).pointCount).toBe(1024);
    expect(new Ring([{ nodeId: 'tiny', weight: 1e-9 }]).pointCount).toBe(1);
    expect(new Ring([{ nodeId: 'ü'.repeat(ringLimits.maxNodeIdBytes / 2) }]).size).toBe(1);
  });
});
