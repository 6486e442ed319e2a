import type { Calendar } from '../limiter/calendar.js';

/**
 * What the Lua script needs of a calendar window (script.ts), as numbers: its period starts
 * around now, computed here by the core's own Calendar so that Redis decides in exactly the
 * same periods — Lua has no time-zone data. Encoded as [1, phase, length] when the periods
 * are a regular grid (minutes everywhere, hours of UTC), else [2, n, s1 … sn]: the starts,
 * ascending, the last one the end of the last period.
 *
 * The starts reach HORIZON_BACK_MS before now and HORIZON_AHEAD_MS after: a state older than
 * the first start has had every queued unit run (reservations wait at most a day), so the
 * script counts it as drained, as the core does; the ahead part covers the longest wait,
 * the periods a reservation's reset time needs, and Redis's clock being off from ours.
 */
const DAY_MS = 86_400_000;
const HORIZON_BACK_MS = 2 * DAY_MS;
const HORIZON_AHEAD_MS = 2 * DAY_MS;
/** Periods past each horizon: a reservation's reset is up to two periods past its window. */
const SPARE_PERIODS = 3;
/** More starts than a table may hold: hours over five days are about 130. */
const MAX_STARTS = 512;

interface Cached {
  /** The table holds for every now in [from, until): the period it was made in. */
  from: number;
  until: number;
  args: number[];
}

export class CalendarArgs {
  private readonly cache = new Map<Calendar, Cached>();

  /** The script's numbers for `calendar` around `nowMs`; made once per period and calendar. */
  of(calendar: Calendar, nowMs: number): number[] {
    const hit = this.cache.get(calendar);
    if (hit !== undefined && nowMs >= hit.from && nowMs < hit.until) return hit.args;
    const from = calendar.start(nowMs);
    const args = argsAround(calendar, nowMs);
    // A calendar per (unit, zone): at most zoneLimits.maxCalendarZones × 6 entries.
    this.cache.set(calendar, { from, until: calendar.after(from, 1), args });
    return args;
  }
}

function argsAround(calendar: Calendar, nowMs: number): number[] {
  const first = calendar.start(nowMs - HORIZON_BACK_MS - SPARE_PERIODS * calendar.longestMs);
  const last = nowMs + HORIZON_AHEAD_MS + SPARE_PERIODS * calendar.longestMs;
  const grid = gridLength(calendar);
  if (grid !== undefined && isGrid(calendar, first, last, grid)) return [1, first % grid, grid];
  const starts: number[] = [];
  for (let s = first; starts.length < MAX_STARTS; s = calendar.after(s, 1)) {
    starts.push(s);
    if (s > last) break;
  }
  return [2, starts.length, ...starts];
}

/** Units whose periods may be a regular grid: minutes (offsets change at whole minutes), UTC hours. */
function gridLength(calendar: Calendar): number | undefined {
  if (calendar.unit === 'minute') return 60_000;
  if (calendar.unit === 'hour' && calendar.timeZone === 'UTC') return 3_600_000;
  return undefined;
}

/** Whether the periods from `first` to `last` all start on the grid of `length` through `first`. */
function isGrid(calendar: Calendar, first: number, last: number, length: number): boolean {
  if (calendar.timeZone === 'UTC') return true;
  // A zone of the past with an offset in seconds is not on the minute grid: check the ends and the middle.
  for (const t of [first, (first + last) / 2, last]) {
    const start = calendar.start(t);
    if ((((start - first) % length) + length) % length !== 0 || calendar.after(start, 1) - start !== length) return false;
  }
  return true;
}
