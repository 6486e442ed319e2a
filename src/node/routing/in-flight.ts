/** What an InFlightTable holds: items that carry the id the table gave them. */
export interface HasId {
  id: number;
}

const INITIAL_SLOTS = 1_024;

/**
 * Requests awaiting an answer, by id, in send order: the ids are the table's own,
 * increasing, and index a power-of-two array of slots. Instead of a Map, because a Map that
 * takes hundreds of thousands of inserts and deletes a second keeps replacing its backing
 * table, and every table dropped in the old generation still points at young requests: the
 * scavenger then promotes them (and their promises and answers), and its pauses grow.
 * Slots never move; taking an item empties its slot.
 */
export class InFlightTable<T extends HasId> {
  private slots: (T | undefined)[] = new Array<T | undefined>(INITIAL_SLOTS).fill(undefined);
  private mask = INITIAL_SLOTS - 1;
  private nextId = 1;
  /** No live item has an id below this. */
  private oldestId = 1;
  private count = 0;

  /** `maxItems`: the most it ever holds (the slots grow to fit, up to twice that). */
  constructor(private readonly maxItems: number) {}

  get size(): number {
    return this.count;
  }

  /** Gives `item` the next free id and holds it. Throws past maxItems (callers bound what they add). */
  add(item: T): number {
    if (this.count >= this.maxItems) throw new RangeError(`InFlightTable: more than ${this.maxItems} items`);
    if (2 * (this.count + 1) > this.slots.length) this.grow();
    // A slot still held by a much older item (its id one lap behind) is skipped.
    while (this.slots[this.nextId & this.mask] !== undefined) this.nextId++;
    const id = this.nextId++;
    item.id = id;
    this.slots[id & this.mask] = item;
    this.count++;
    return id;
  }

  /** The item with `id`, removed; undefined when there is none (answered, or moved on). */
  take(id: number): T | undefined {
    const index = id & this.mask;
    const item = this.slots[index];
    if (item === undefined || item.id !== id) return undefined;
    this.slots[index] = undefined;
    this.count--;
    return item;
  }

  /** The live item with the lowest id: the first sent of those still waiting. */
  oldest(): T | undefined {
    while (this.oldestId < this.nextId) {
      const item = this.slots[this.oldestId & this.mask];
      if (item !== undefined && item.id === this.oldestId) return item;
      this.oldestId++;
    }
    return undefined;
  }

  /** Every live item, in no particular order (closing, a broken stream). */
  values(): T[] {
    const out: T[] = [];
    if (this.count === 0) return out;
    for (const item of this.slots) if (item !== undefined) out.push(item);
    return out;
  }

  clear(): void {
    this.slots.fill(undefined);
    this.count = 0;
    this.oldestId = this.nextId;
  }

  private grow(): void {
    const limit = 2 * this.maxItems;
    if (this.slots.length >= limit) return;
    const slots = new Array<T | undefined>(this.slots.length * 2).fill(undefined);
    const mask = slots.length - 1;
    // Live ids never share their low bits (they did not in the smaller table), so none collide.
    for (const item of this.slots) if (item !== undefined) slots[item.id & mask] = item;
    this.slots = slots;
    this.mask = mask;
  }
}
