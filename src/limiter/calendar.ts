import { invalidArgument } from '../common/errors.js';
import { DAY_MS, daysFromCivil, monthIndexOfDays, zoneOf, type Zone } from './calendar-zone.js';

/**
 * Calendar windows: periods aligned to the calendar of UTC or of an IANA time zone, for
 * quotas such as "1,000 per day, reset at midnight Europe/Paris".
 *
 * - day, week (ISO: from Monday), month, year follow the local calendar date: a period runs
 *   from the first instant of its local date (local midnight; the first instant after a
 *   daylight-saving gap when midnight does not exist) to the first instant of the next
 *   period's. A day with a DST change is 23 or 25 hours long (Lord Howe: 23.5 or 24.5;
 *   Antarctica/Troll, which moves two hours: 22 or 26). A date the zone skipped whole
 *   (Pacific/Apia's 2011-12-30) is no period: the one before ends where the next begins.
 * - hour, minute: a new period starts whenever the local hour (minute) changes or the UTC
 *   offset changes. At a fall-back the repeated local hour is two periods of 60 minutes,
 *   never one of 120; in +05:30 (+05:45) zones hours start at :30 (:15) UTC. No period is
 *   longer than its unit; one next to an offset change may be shorter (Lord Howe: 30 min;
 *   Pacific/Chatham, changing at 02:45 local: 45 and 15 min).
 *
 * Zone rules come from the platform's ICU, which costs microseconds a call: each calendar
 * keeps the period it last answered for, so an instant inside it (the hot path) costs two
 * comparisons and allocates nothing; a boundary computes the next periods once. UTC never
 * touches ICU. Assumed of the zone data, true of every zone from 1900 on: offsets change
 * at whole seconds, at most once in 24 hours, and never move the wall clock back across
 * midnight from after it.
 */

export type CalendarUnit = 'minute' | 'hour' | 'day' | 'week' | 'month' | 'year';

export const CALENDAR_UNITS: readonly CalendarUnit[] = ['minute', 'hour', 'day', 'week', 'month', 'year'];

const HOUR_MS = 3_600_000;

/**
 * The longest period of each unit. Minutes and hours are cut at offset changes, so never
 * longer than the unit; a date's period is its nominal length plus what a change of offset
 * adds: one hour in most zones, two at Antarctica/Troll every year, three at Casey (2012–).
 */
export const longestPeriodMs: Readonly<Record<CalendarUnit, number>> = {
  minute: 60_000,
  hour: HOUR_MS,
  day: DAY_MS + 3 * HOUR_MS,
  week: 7 * DAY_MS + 3 * HOUR_MS,
  month: 31 * DAY_MS + 3 * HOUR_MS,
  year: 366 * DAY_MS + 3 * HOUR_MS,
};

/** First instants of date periods remembered per calendar (by period index): a queue or an idle key's catch-up asks for the same few. */
const MAX_REMEMBERED_STARTS = 256;
/** Empty periods in a row a date calendar steps over (a date skipped whole, as Pacific/Apia's 2011-12-30). */
const MAX_EMPTY_PERIODS = 8;
/** Up to this many periods apart, between() counts date periods one by one, skipping empty ones. */
const COUNTED_PERIODS = 8;

/**
 * Up to this span, between() counts minute and hour periods in a named zone exactly; past it
 * it answers ⌊span / unit⌋, a lower bound (no such period is longer than its unit) of more
 * than 72 hours or 4,320 minutes. A window count only needs to be exact up to the number of
 * windows its queued units reach: at most maxWaitMs (24 h, so about 26 hours counting
 * Lord Howe's half hours, or 1,441 minutes) plus one window ahead; every larger count drains
 * them all the same.
 */
export const exactCountSpanMs = 3 * DAY_MS;

const enum Kind {
  Clock,
  Date,
}

export class Calendar {
  readonly unit: CalendarUnit;
  /** The zone's canonical name ("UTC" for UTC). */
  readonly timeZone: string;
  /** The longest a period can be (longestPeriodMs). */
  readonly longestMs: number;
  private readonly zone: Zone;
  private readonly kind: Kind;
  /** minute and hour: the unit in ms. */
  private readonly unitMs: number;
  /**
   * The last period asked: [start, end, end of the period after, start of the period before
   * (NaN: not known), the period's index (day, week, month, year)].
   */
  private readonly cache = new Float64Array([NaN, NaN, NaN, NaN, NaN]);
  /** firstOfIndex() by index, up to MAX_REMEMBERED_STARTS. */
  private readonly starts = new Map<number, number>();

  constructor(unit: CalendarUnit, zone: Zone) {
    this.unit = unit;
    this.timeZone = zone.name;
    this.longestMs = longestPeriodMs[unit];
    this.zone = zone;
    this.kind = unit === 'minute' || unit === 'hour' ? Kind.Clock : Kind.Date;
    this.unitMs = unit === 'minute' ? 60_000 : HOUR_MS;
    Object.freeze(this);
  }

  /** The start of the period containing instant t. */
  start(t: number): number {
    const c = this.cache;
    if (t >= c[0]! && t < c[1]!) return c[0]!;
    return this.move(t);
  }

  /** The start of the k-th period after the one starting at `start` (k ≥ 0). */
  after(start: number, k: number): number {
    if (k === 0) return start;
    const c = this.cache;
    if (start === c[0]) {
      if (k === 1) return c[1]!;
      if (k === 2) return c[2]!;
    } else if (start === c[1] && k === 1) return c[2]!;
    if (this.kind === Kind.Clock) return this.clockAfter(this.nearestClockStart(start), k);
    let index = this.indexNear(start);
    for (let i = 0; i < k; i++) index = this.nextIndex(index);
    return this.firstOfIndex(index);
  }

  /** The length of the period starting at `start`. */
  lengthOf(start: number): number {
    const c = this.cache;
    if (start === c[0]) return c[1]! - c[0]!;
    if (start === c[1]) return c[2]! - c[1]!;
    return this.after(start, 1) - start;
  }

  /**
   * Whole periods from the one starting at `from` to the one starting at `to` (0 when to ≤ from).
   * An instant that is not a period start (a state re-based from another node's clock) counts
   * as the nearest one. Exact, except minute and hour periods in a named zone more than
   * exactCountSpanMs apart: then a lower bound above every reachable queue (exactCountSpanMs).
   */
  between(from: number, to: number): number {
    if (to <= from) return 0;
    const c = this.cache;
    if (to === c[0]) {
      if (from === c[3]) return 1;
    } else if (from === c[0]) {
      if (to === c[1]) return 1;
      if (to === c[2]) return 2;
    }
    if (this.kind === Kind.Date) return this.dateCount(this.indexNear(from), this.indexNear(to));
    if (this.zone.isUtc) return Math.max(0, Math.round((to - from) / this.unitMs));
    if (to - from > exactCountSpanMs) return Math.floor((to - from) / this.unitMs);
    return this.clockCount(this.nearestClockStart(from), this.nearestClockStart(to));
  }

  /** Moves the cache to the period containing t; returns its start. */
  private move(t: number): number {
    const c = this.cache;
    const date = this.kind === Kind.Date;
    if (t >= c[1]! && t < c[2]!) {
      // The next period, as time goes on: one new boundary to compute.
      const index = date ? this.nextIndex(c[4]!) : 0;
      c[3] = c[0]!;
      c[0] = c[1]!;
      c[1] = c[2]!;
      c[2] = date ? this.firstOfIndex(this.nextIndex(this.nextIndex(index))) : this.clockNext(c[2]!);
      c[4] = index;
      return c[0]!;
    }
    if (date) {
      const index = this.indexAt(t);
      const next = this.nextIndex(index);
      c[0] = this.firstOfIndex(index);
      c[1] = this.firstOfIndex(next);
      c[2] = this.firstOfIndex(this.nextIndex(next));
      c[4] = index;
    } else {
      c[0] = this.clockStart(t);
      c[1] = this.clockNext(c[0]!);
      c[2] = this.clockNext(c[1]!);
    }
    c[3] = NaN;
    return c[0]!;
  }

  // ---- day, week, month, year: periods numbered by an index over local dates ----

  private indexOfDays(days: number): number {
    switch (this.unit) {
      case 'day':
        return days;
      case 'week':
        return Math.floor((days + 3) / 7); // 1970-01-01 was a Thursday
      case 'month':
        return monthIndexOfDays(days);
      default:
        return Math.floor(monthIndexOfDays(days) / 12);
    }
  }

  private daysOfIndex(index: number): number {
    switch (this.unit) {
      case 'day':
        return index;
      case 'week':
        return index * 7 - 3;
      case 'month': {
        const year = Math.floor(index / 12);
        return daysFromCivil(year, index - year * 12 + 1, 1);
      }
      default:
        return daysFromCivil(index, 1, 1);
    }
  }

  /** The index of the period containing t. */
  private indexAt(t: number): number {
    let index = this.indexOfDays(Math.floor((t + this.zone.offsetAt(t)) / DAY_MS));
    // Only where the wall clock jumps across midnight does the date's period not hold t.
    while (this.firstOfIndex(index) > t) index--;
    while (this.firstOfIndex(index + 1) <= t) index++;
    return index;
  }

  /** The index of the period start nearest to t. */
  private indexNear(t: number): number {
    const index = this.indexAt(t);
    const start = this.firstOfIndex(index);
    return t === start || t - start <= this.firstOfIndex(index + 1) - t ? index : index + 1;
  }

  private firstOfIndex(index: number): number {
    const known = this.starts.get(index);
    if (known !== undefined) return known;
    const first = this.firstInstantOfDate(this.daysOfIndex(index) * DAY_MS);
    if (this.starts.size >= MAX_REMEMBERED_STARTS) this.starts.clear();
    this.starts.set(index, first);
    return first;
  }

  /** The index of the period after period `index`, stepping over empty ones (a date the zone skipped whole). */
  private nextIndex(index: number): number {
    let next = index + 1;
    for (let i = 0; i < MAX_EMPTY_PERIODS && this.firstOfIndex(next + 1) === this.firstOfIndex(next); i++) next++;
    return next;
  }

  /** Periods from index `from` to index `to`, empty ones not counted; past COUNTED_PERIODS the index difference (every queue has drained by then). */
  private dateCount(from: number, to: number): number {
    if (to <= from) return 0;
    if (to - from > COUNTED_PERIODS) return to - from;
    let count = 0;
    for (let index = from; index < to; index = this.nextIndex(index)) count++;
    return count;
  }

  /** The first instant whose local wall clock reads at least `wall` (a local midnight, in ms). */
  private firstInstantOfDate(wall: number): number {
    const zone = this.zone;
    if (zone.isUtc) return wall;
    const reaches = (t: number): boolean => t + zone.offsetAt(t) >= wall;
    const guess = wall - zone.offsetAt(wall - zone.offsetAt(wall));
    if (reaches(guess) && !reaches(guess - 1)) return guess;
    // Offsets lie within ±18 h; transitions fall on whole seconds: search seconds.
    let lo = wall / 1000 - 19 * 3600;
    let hi = wall / 1000 + 19 * 3600;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (reaches(mid * 1000)) hi = mid;
      else lo = mid;
    }
    return hi * 1000;
  }

  // ---- minute, hour: a grid of the unit in the local clock, cut at every offset change ----

  private clockStart(t: number): number {
    const zone = this.zone;
    const unit = this.unitMs;
    const offset = zone.offsetAt(t);
    const grid = Math.floor((t + offset) / unit) * unit - offset;
    if (zone.isUtc || zone.offsetAt(grid) === offset) return grid;
    // The offset changed after the grid point: the period starts at that change.
    return this.firstSecond(grid, t, offset, true);
  }

  /** The start of the period after the one starting at `start`. */
  private clockNext(start: number): number {
    const zone = this.zone;
    const unit = this.unitMs;
    const offset = zone.offsetAt(start);
    const grid = Math.floor((start + offset) / unit) * unit - offset + unit;
    if (zone.isUtc || zone.offsetAt(grid) === offset) return grid;
    return this.firstSecond(start, grid, offset, false);
  }

  /**
   * The first whole second in (from, to] at which the offset is (`equal`) or is not
   * (!`equal`) `offset`, given that it flips once in between and holds at `to` (`equal`)
   * or at `from` (!`equal`).
   */
  private firstSecond(from: number, to: number, offset: number, equal: boolean): number {
    let lo = Math.floor(from / 1000);
    let hi = Math.floor(to / 1000);
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if ((this.zone.offsetAt(mid * 1000) === offset) === equal) hi = mid;
      else lo = mid;
    }
    return hi * 1000;
  }

  private nearestClockStart(t: number): number {
    const start = this.clockStart(t);
    if (start === t) return start;
    const end = this.clockNext(start);
    return t - start <= end - t ? start : end;
  }

  private clockAfter(start: number, k: number): number {
    const zone = this.zone;
    const unit = this.unitMs;
    const offset = zone.offsetAt(start);
    const grid = Math.floor((start + offset) / unit) * unit - offset + k * unit;
    // No offset change in between (at most one a day): the k-th grid point.
    if (zone.isUtc || (grid - start <= DAY_MS && zone.offsetAt(grid) === offset && zone.offsetAt(grid - unit) === offset)) return grid;
    // Else a day at a time, as clockCount() counts: grid points of each offset, and every change.
    let left = k;
    let at = start;
    for (;;) {
      const now = zone.offsetAt(at);
      const gridIndex = (t: number): number => Math.floor((t + now) / unit);
      const probe = at + DAY_MS;
      if (zone.offsetAt(probe) === now) {
        const points = gridIndex(probe) - gridIndex(at);
        if (left <= points) return (gridIndex(at) + left) * unit - now;
        left -= points;
        at = probe;
        continue;
      }
      const change = this.firstSecond(at, probe, now, false);
      const inside = gridIndex(change) - gridIndex(at) - ((change + now) % unit === 0 ? 1 : 0);
      if (left <= inside) return (gridIndex(at) + left) * unit - now;
      left -= inside + 1; // the change itself starts a period
      if (left === 0) return change;
      at = change;
    }
  }

  /** Period starts in (from, to], both period starts, walking a day at a time. */
  private clockCount(from: number, to: number): number {
    const zone = this.zone;
    const unit = this.unitMs;
    let count = 0;
    let at = from;
    while (at < to) {
      const offset = zone.offsetAt(at);
      const probe = Math.min(to, at + DAY_MS);
      const gridIndex = (t: number): number => Math.floor((t + offset) / unit);
      if (zone.offsetAt(probe) === offset) {
        count += gridIndex(probe) - gridIndex(at);
        at = probe;
      } else {
        const change = this.firstSecond(at, probe, offset, false);
        // Grid points in (at, change), then the change itself starts a period.
        const onGrid = (change + offset) % unit === 0;
        count += gridIndex(change) - gridIndex(at) + (onGrid ? 0 : 1);
        at = change;
      }
    }
    return count;
  }
}

const calendars = new Map<Zone, Calendar[]>();

function unitIndex(unit: unknown): number {
  switch (unit) {
    case 'minute': return 0;
    case 'hour': return 1;
    case 'day': return 2;
    case 'week': return 3;
    case 'month': return 4;
    case 'year': return 5;
    default:
      throw invalidArgument('calendar', `must be one of ${CALENDAR_UNITS.join(', ')}, got ${JSON.stringify(unit)}`);
  }
}

/**
 * The calendar of `unit` in `timeZone` (an IANA name; UTC by default): one frozen object per
 * (unit, zone), so params can compare calendars by reference. Throws INVALID_ARGUMENT naming
 * `calendar` or `timeZone`. Zones are kept up to zoneLimits.maxCalendarZones.
 */
export function calendarOf(unit: CalendarUnit, timeZone: string = 'UTC'): Calendar {
  const index = unitIndex(unit);
  const zone = zoneOf(timeZone);
  let byUnit = calendars.get(zone);
  if (byUnit === undefined) calendars.set(zone, (byUnit = []));
  return (byUnit[index] ??= new Calendar(CALENDAR_UNITS[index]!, zone));
}

export { zoneLimits } from './calendar-zone.js';
