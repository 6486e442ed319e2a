import type { ResolvedParams } from '../types.js';
import { nextUp } from './float.js';

/**
 * Shared arithmetic of the two window algorithms. Windows are aligned to multiples of
 * windowMs on the deciding node's clock, or to a calendar (calendar.ts), whose periods
 * differ in length: a count carried across windows is counted in windows, never in ms. A window's count may exceed the limit only
 * through reservations: units past k × limit belong to the k-th window ahead, so
 * queued reservations carry into the windows where they will run.
 */

export function windowStart(nowMs: number, windowMs: number): number {
  return Math.floor(nowMs / windowMs) * windowMs;
}

/** Whole windows between two aligned starts (rounded: starts are products of floats). */
export function windowsBetween(fromStart: number, toStart: number, windowMs: number): number {
  return Math.round((toStart - fromStart) / windowMs);
}

/**
 * Index (0 = current) of the first window in which `cost` more units fit behind `count`
 * queued ones, never splitting a request across two windows (a split request would run
 * in the later window while part of it was charged to the earlier one: over-admission).
 */
export function targetWindow(count: number, cost: number, limit: number): number {
  const index = Math.floor(count / limit);
  return count - index * limit + cost <= limit ? index : index + 1;
}

/**
 * The first clock time in the window `ahead` windows after the one starting at `start`,
 * on the grid windowStart() defines. Computed products of fractional windows can land a
 * hair before the boundary; step up to it so "retry after" is never a hair early.
 */
export function windowBoundary(start: number, ahead: number, windowMs: number): number {
  const index = Math.round(start / windowMs) + ahead;
  let at = start + ahead * windowMs;
  for (let i = 0; i < 64 && Math.floor(at / windowMs) < index; i++) at = nextUp(at);
  return at;
}

/*
 * The same for resolved params: calendar windows (p.calendar, calendar.ts) when present,
 * else the fixed grid above, at the cost of one null check.
 */

/** The start of the window containing nowMs. */
export function windowStartOf(p: ResolvedParams, nowMs: number): number {
  const calendar = p.calendar;
  return calendar === null ? Math.floor(nowMs / p.windowMs) * p.windowMs : calendar.start(nowMs);
}

/** Whole windows between two window starts. */
export function windowsBetweenOf(p: ResolvedParams, fromStart: number, toStart: number): number {
  const calendar = p.calendar;
  return calendar === null ? Math.round((toStart - fromStart) / p.windowMs) : calendar.between(fromStart, toStart);
}

/** The first clock time of the window `ahead` windows after the one at `start`, never a hair early. */
export function windowBoundaryOf(p: ResolvedParams, start: number, ahead: number): number {
  const calendar = p.calendar;
  return calendar === null ? windowBoundary(start, ahead, p.windowMs) : calendar.after(start, ahead);
}

/** The start of the window `ahead` windows after the one at `start`, as plain arithmetic for fixed windows (reset times). */
export function windowsAfterOf(p: ResolvedParams, start: number, ahead: number): number {
  const calendar = p.calendar;
  return calendar === null ? start + ahead * p.windowMs : calendar.after(start, ahead);
}

/** The length of the window starting at `start`. */
export function windowLengthOf(p: ResolvedParams, start: number): number {
  const calendar = p.calendar;
  return calendar === null ? p.windowMs : calendar.lengthOf(start);
}
