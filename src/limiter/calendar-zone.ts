import { invalidArgument } from '../common/errors.js';

/**
 * Civil-date arithmetic and a time zone's UTC offset, for calendar windows (calendar.ts).
 * UTC is pure integer arithmetic; a named zone asks the platform's ICU (Intl.DateTimeFormat),
 * which costs microseconds, so callers cache what they compute from it.
 */

export const DAY_MS = 86_400_000;

/** Days from 1970-01-01 to the civil date y-m-d (proleptic Gregorian; m 1–12). */
export function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/** The civil year and month (1–12) of a day count from 1970-01-01, as year × 12 + month − 1. */
export function monthIndexOfDays(days: number): number {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const m = mp < 10 ? mp + 3 : mp - 9;
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  return y * 12 + m - 1;
}

/** A time zone's rules: the offset (local wall clock minus UTC, ms) in force at an instant. */
export interface Zone {
  /** Canonical name, as the platform spells it ("UTC" for UTC). */
  readonly name: string;
  readonly isUtc: boolean;
  offsetAt(t: number): number;
}

const utcZone: Zone = Object.freeze({ name: 'UTC', isUtc: true, offsetAt: (): number => 0 });

function namedZone(name: string, format: Intl.DateTimeFormat): Zone {
  const offsetAt = (t: number): number => {
    const second = Math.floor(t / 1000) * 1000;
    let y = 0;
    let mo = 1;
    let d = 1;
    let h = 0;
    let mi = 0;
    let s = 0;
    let bc = false;
    for (const part of format.formatToParts(second)) {
      switch (part.type) {
        case 'year': y = Number(part.value); break;
        case 'month': mo = Number(part.value); break;
        case 'day': d = Number(part.value); break;
        case 'hour': h = Number(part.value); break;
        case 'minute': mi = Number(part.value); break;
        case 'second': s = Number(part.value); break;
        case 'era': bc = part.value === 'B' || part.value.startsWith('BC'); break;
        default: break;
      }
    }
    if (bc) y = 1 - y;
    const wall = daysFromCivil(y, mo, d) * DAY_MS + ((h * 60 + mi) * 60 + s) * 1000;
    return wall - second;
  };
  return Object.freeze({ name, isUtc: false, offsetAt });
}

export const zoneLimits = {
  /** Distinct zones (by canonical name) kept; each holds one ICU formatter and up to six calendars. */
  maxCalendarZones: 1024,
  /** Distinct spellings of zone names remembered for a lookup without ICU; past it a new spelling is looked up every time. */
  maxZoneSpellings: 4096,
  /** Longest zone name accepted, in characters (IANA names are at most about 30). */
  maxZoneNameLength: 64,
} as const;

const zonesByName = new Map<string, Zone>([['UTC', utcZone]]);
const zonesBySpelling = new Map<string, Zone>([['UTC', utcZone]]);

/** The zone named `timeZone` (an IANA name), interned; INVALID_ARGUMENT naming `timeZone` when the platform does not know it. */
export function zoneOf(timeZone: unknown): Zone {
  if (typeof timeZone === 'string') {
    // A canonical name is always known once its zone is; other spellings up to maxZoneSpellings.
    const known = zonesBySpelling.get(timeZone) ?? zonesByName.get(timeZone);
    if (known !== undefined) return known;
  }
  if (typeof timeZone !== 'string' || timeZone.length === 0 || timeZone.length > zoneLimits.maxZoneNameLength) {
    throw invalidArgument('timeZone', `must be an IANA time zone name such as "Europe/Paris" (at most ${zoneLimits.maxZoneNameLength} characters), got ${JSON.stringify(timeZone)}`);
  }
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone, hourCycle: 'h23', era: 'short', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
    });
  } catch {
    throw invalidArgument('timeZone', `unknown time zone ${JSON.stringify(timeZone)}; expected an IANA name such as "Europe/Paris" or "UTC"`);
  }
  const canonical = format.resolvedOptions().timeZone;
  let zone = zonesByName.get(canonical === 'Etc/UTC' || canonical === 'Etc/GMT' || canonical === 'GMT' ? 'UTC' : canonical);
  if (zone === undefined) {
    if (zonesByName.size >= zoneLimits.maxCalendarZones) {
      throw invalidArgument('timeZone', `more than ${zoneLimits.maxCalendarZones} distinct time zones in use (maxCalendarZones)`);
    }
    zone = namedZone(canonical, format);
    zonesByName.set(canonical, zone);
  }
  if (zonesBySpelling.size < zoneLimits.maxZoneSpellings) zonesBySpelling.set(timeZone, zone);
  return zone;
}
