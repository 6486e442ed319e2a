/** One holder's outstanding grants of one key, at its owner. */
interface GrantRecord {
  /** The window the units were taken from (its start, on the owner's clock). */
  epoch: number;
  /** Granted and not given back. */
  outstanding: number;
  /** The holder's rate for the key as it last reported it, per s: its share of the key's leased traffic. */
  ratePerSec: number;
  /** Forgotten after this (the window's end, on the owner's clock): a return then gives back nothing. */
  untilMs: number;
}

/**
 * The owner's record of what it granted, per key and holder: what a holder may give back (no
 * more than it was granted, for the same window: a holder is a member, but its numbers are
 * still checked), and each holder's share of the key's leased traffic. Bounded by `maxGrants`
 * records; lost with the owner (a return to another owner then gives back nothing: under-, never over-admission).
 */
export class GrantLedger {
  /** `${action}\0${key}` → holder node id → record. */
  private readonly keys = new Map<string, Map<string, GrantRecord>>();
  private count = 0;

  constructor(private readonly maxGrants: number) {}

  get size(): number {
    return this.count;
  }

  /**
   * The holder's share of the key's leased traffic, given the rate it reports now; undefined
   * when no record can be kept for it (maxGrants reached): the ask is refused then.
   */
  share(action: string, key: string, holder: string, ratePerSec: number, nowMs: number): number | undefined {
    const holders = this.keys.get(`${action}\u0000${key}`);
    let record = holders?.get(holder);
    if (record === undefined) {
      if (this.count >= this.maxGrants) return undefined;
      record = { epoch: Number.NaN, outstanding: 0, ratePerSec, untilMs: nowMs };
      if (holders === undefined) this.keys.set(`${action}\u0000${key}`, new Map([[holder, record]]));
      else holders.set(holder, record);
      this.count++;
    }
    record.ratePerSec = ratePerSec;
    let total = 0;
    for (const r of (holders ?? this.keys.get(`${action}\u0000${key}`))!.values()) if (r.untilMs >= nowMs || r === record) total += r.ratePerSec;
    return total > 0 ? ratePerSec / total : 1;
  }

  /** `units` granted to `holder` out of the window starting at `epoch`, ending at `untilMs` (a grant of another window replaces the record's). */
  granted(action: string, key: string, holder: string, epoch: number, units: number, untilMs: number): void {
    const record = this.keys.get(`${action}\u0000${key}`)?.get(holder);
    if (record === undefined) return;
    if (record.epoch !== epoch) {
      record.epoch = epoch;
      record.outstanding = 0;
    }
    record.outstanding += units;
    record.untilMs = Math.max(record.untilMs, untilMs);
  }

  /** What of a return of `units` for the window at `epoch` may be given back: no more than was granted to `holder` for it and not given back yet. */
  takeBack(action: string, key: string, holder: string, epoch: number, units: number, nowMs: number): number {
    const record = this.keys.get(`${action}\u0000${key}`)?.get(holder);
    if (record === undefined || record.epoch !== epoch || record.untilMs < nowMs) return 0;
    const back = Math.min(units, record.outstanding);
    record.outstanding -= back;
    return back;
  }

  /** Forgets the records whose window is over. */
  sweep(nowMs: number): void {
    for (const [id, holders] of this.keys) {
      for (const [holder, record] of holders) {
        if (record.untilMs >= nowMs) continue;
        holders.delete(holder);
        this.count--;
      }
      if (holders.size === 0) this.keys.delete(id);
    }
  }

  /** Ownership changed: every record may be another owner's now; returns to this node then give back nothing. */
  clear(): void {
    this.keys.clear();
    this.count = 0;
  }
}
