/** (action → key → true): a bounded set of hot keys, without a string built per mark. */
type Nested<T> = Map<string, Map<string, T>>;

/** The hot keys the owner decided since its last broadcast: a bounded set the owner-side decision fills. */
export class HotKeyMarks {
  private readonly marks: Nested<true> = new Map();
  private count = 0;
  /** Marks refused because the set was full (the key is then broadcast at a later sync). */
  overflow = 0;
  private onMarked: () => void = () => undefined;

  constructor(private readonly maxKeys: number) {}

  mark(action: string, key: string): void {
    let keys = this.marks.get(action);
    if (keys?.has(key) === true) return;
    if (this.count >= this.maxKeys) {
      this.overflow++;
      return;
    }
    if (keys === undefined) this.marks.set(action, (keys = new Map()));
    keys.set(key, true);
    this.count++;
    this.onMarked();
  }

  /** Calls `listener` whenever a key is newly marked (the broadcaster wakes up for it). */
  whenMarked(listener: () => void): void {
    this.onMarked = listener;
  }

  get size(): number {
    return this.count;
  }

  /** Visits every mark once and forgets them all. */
  drain(visit: (action: string, key: string) => void): void {
    for (const [action, keys] of this.marks) for (const key of keys.keys()) visit(action, key);
    this.marks.clear();
    this.count = 0;
  }
}
