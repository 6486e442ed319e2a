/** Float helpers shared by the algorithms. */

const bits = new Float64Array(1);
const words = new Uint32Array(bits.buffer);
const LOW = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;

/** The next larger double, for x > 0: positive doubles order like their bit patterns. */
export function nextUp(x: number): number {
  bits[0] = x;
  const low = words[LOW]!;
  if (low === 0xffffffff) {
    words[LOW] = 0;
    words[1 - LOW] = words[1 - LOW]! + 1;
  } else {
    words[LOW] = low + 1;
  }
  return bits[0]!;
}
