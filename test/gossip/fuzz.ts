import { encodeValue } from '../../src/gossip/codec.js';
import { defaults } from '../../src/gossip/defaults.js';
import { decodePacket } from '../../src/gossip/message-codec.js';
import type { Keyring } from '../../src/gossip/keyring.js';
import { frame } from '../../src/gossip/packet.js';
import type { Rng } from '../../src/common/rng.js';
import type { WireValue } from '../../src/gossip/wire.js';

type Wire = WireValue | null | boolean | Uint8Array | Record<string, unknown> | undefined | Wire[];

/** Values that are wrong wherever they appear in our schema. */
const POISON: Wire[] = [
  null,
  undefined,
  true,
  -1,
  1.5,
  Number.NaN,
  2 ** 60,
  '',
  'x'.repeat(300),
  'bad host:99999',
  'no-such-host.invalid:7000',
  '127.0.0.1:99999',
  '127.0.0.1:0',
  '::1:7000',
  new Uint8Array([1, 2, 3]),
  { __proto__: { polluted: true } },
  [[[[[[[]]]]]]],
];

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)] as T;
}

function validTemplate(rng: Rng, target: string): Wire[] {
  const alive: Wire[] = [0, 'n9', 1, 2, '127.0.0.1:9999', ['state', 'active']];
  const suspect: Wire[] = [1, target, 1, 0, 'n9'];
  switch (rng.int(8)) {
    case 0:
      return [1, 'n9', rng.int(1000), target, [alive]];
    case 1:
      return [2, 'n9', rng.int(1000), target, '127.0.0.1:7000', [suspect]];
    case 2:
      return [3, 'n9', rng.int(1000), [alive]];
    case 3:
      return [4, 'n9', rng.int(1000)];
    case 4:
      return [5, 'n9', [alive, suspect]];
    case 5:
      return [6, 'n9', 1, [['n9', '127.0.0.1:9999', 1, 0, 0, []]]];
    case 6:
      return [8, 'n9', rng.int(2 ** 32), rng.int(2 ** 32), 1 + rng.int(100)];
    default:
      return [7, 'n9', [['n9', '127.0.0.1:9999', 1, 0, 3, ['k', 'v']]]];
  }
}

/** Replace one field somewhere in the message (nested up to 3 levels) with a poison value. */
function poisonSomewhere(rng: Rng, message: Wire[]): Wire[] {
  const copy = structuredClone(message) as Wire[];
  let node: Wire[] = copy;
  for (let depth = 0; depth < 3; depth++) {
    const i = rng.int(node.length);
    const child = node[i];
    if (Array.isArray(child) && child.length > 0 && rng.next() < 0.6) {
      node = child;
      continue;
    }
    node[i] = pick(rng, POISON);
    return copy;
  }
  node[rng.int(node.length)] = pick(rng, POISON);
  return copy;
}

function randomBytes(rng: Rng, max: number): Uint8Array {
  return Uint8Array.from({ length: 1 + rng.int(max) }, () => rng.int(256));
}

/**
 * A datagram that must be rejected: random bytes, truncated or garbled frames, bad MACs,
 * unknown types, or a well-formed message with one poisoned field.
 */
export function invalidDatagram(rng: Rng, target: string, keyring: Keyring | undefined): Uint8Array {
  // A poisoned field can land somewhere it is still legal (e.g. '' as a metadata value):
  // regenerate until the candidate is really invalid, so fuzzing never injects real state.
  for (let attempt = 0; attempt < 20; attempt++) {
    const candidate = candidateDatagram(rng, target, keyring);
    if (!decodePacket(candidate, keyring, defaults.limits).ok) return candidate;
  }
  return randomBytes(rng, 64);
}

function candidateDatagram(rng: Rng, target: string, keyring: Keyring | undefined): Uint8Array {
  const body = (): Uint8Array => {
    try {
      return encodeValue(poisonSomewhere(rng, validTemplate(rng, target)));
    } catch {
      return encodeValue([99, 'n9']);
    }
  };
  switch (rng.int(8)) {
    case 0:
      return randomBytes(rng, 64);
    case 1:
      return randomBytes(rng, 2000);
    case 2: {
      const good = frame(encodeValue(validTemplate(rng, target)), keyring);
      return good.subarray(0, Math.max(1, rng.int(good.length - 1)));
    }
    case 3: {
      const packet = frame(encodeValue(validTemplate(rng, target)), keyring);
      const at = 3 + rng.int(packet.length - 3);
      packet[at] = (packet[at] ?? 0) ^ (1 + rng.int(255));
      return keyring === undefined ? frame(encodeValue([rng.int(2) === 0 ? 200 : -3, 'n9', 1]), undefined) : packet;
    }
    case 4:
      return frame(encodeValue([100 + rng.int(100), 'n9', 1, 2]), keyring);
    case 5:
      return frame(randomBytes(rng, 200), keyring);
    default:
      return frame(body(), keyring);
  }
}
