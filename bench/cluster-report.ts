/** The cluster bench's markdown tables, from its measurements (cluster.ts runs them). */
import type { LoopResult, OpenLoopResult } from './load.js';
import type { Contender } from './peers/redis.js';
import { fmtRate, table } from './util.js';

/** Medians of the closed-loop rounds: by contender name, then by run id (`uniform@64`, `zipf@64`, `hot@64`). */
export type ClosedResults = Map<string, Map<string, LoopResult>>;
/** Open-loop results by contender name, one per offered rate, lowest first. */
export type OpenResults = Map<string, OpenLoopResult[]>;

export interface HotKeyPair {
  path: string;
  off: Contender;
  on: Contender;
}

const us = (ms: number): string => `${(ms * 1000).toFixed(0)} µs`;
const ms2 = (ms: number): string => (ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(2)} ms`);
const times = (x: number): string => `${x.toFixed(2)}×`;

/** `value / base` in brackets, or a dash without a base. */
function ratio(value: number, base: number | undefined): string {
  return base === undefined || !(base > 0) ? '(–)' : `(${times(value / base)})`;
}

function get(results: ClosedResults, contender: Contender, run: string): LoopResult | undefined {
  return results.get(contender.name)?.get(run);
}

/** CPU per decision: the bench process (load generator and client, or embedded member) + the serving processes. */
function cpuCell(r: LoopResult): string {
  if (r.cpu === undefined) return '–';
  const { clientUs, serversUs } = r.cpu;
  return `${clientUs.toFixed(1)} + ${serversUs.toFixed(1)} = ${(clientUs + serversUs).toFixed(1)}`;
}

/** Today's headline: uniform keys at concurrency 1, 64 and 256, ratios against the peer. */
export function headlineTable(contenders: readonly Contender[], results: ClosedResults, peer: Contender | undefined): string {
  const base = (run: string): LoopResult | undefined => (peer === undefined ? undefined : get(results, peer, run));
  const rows = contenders.map((c) => {
    const c1 = get(results, c, 'uniform@1')!;
    const c64 = get(results, c, 'uniform@64')!;
    const c256 = get(results, c, 'uniform@256')!;
    return [
      c.name,
      `${us(c1.p50Ms)} ${ratio(c1.p50Ms, base('uniform@1')?.p50Ms)}`,
      `${fmtRate(c64.rate)} ${ratio(c64.rate, base('uniform@64')?.rate)}`,
      `${ms2(c64.p99Ms)} ${ratio(c64.p99Ms, base('uniform@64')?.p99Ms)}`,
      `${fmtRate(c256.rate)} ${ratio(c256.rate, base('uniform@256')?.rate)}`,
      cpuCell(c64),
    ];
  });
  return table(['contender', 'p50 at concurrency 1', 'decisions/s at 64', 'p99 at 64', 'decisions/s at 256', 'CPU µs per decision at 64: bench process + servers = total'], rows);
}

/** Uniform, Zipf and one hot key at concurrency 64 (hot-key mode off), ratios against the peer. */
export function keySetTable(contenders: readonly Contender[], results: ClosedResults, peer: Contender | undefined): string {
  const cell = (c: Contender, run: string, field: 'rate' | 'p99Ms'): string => {
    const r = get(results, c, run);
    if (r === undefined) return '–';
    const b = peer === undefined ? undefined : get(results, peer, run)?.[field];
    return `${field === 'rate' ? fmtRate(r.rate) : ms2(r.p99Ms)} ${ratio(r[field], b)}`;
  };
  const rows = contenders.map((c) => [
    c.name,
    cell(c, 'uniform@64', 'rate'),
    cell(c, 'zipf@64', 'rate'),
    cell(c, 'zipf@64', 'p99Ms'),
    cell(c, 'hot@64', 'rate'),
    cell(c, 'hot@64', 'p99Ms'),
  ]);
  return table(['contender', 'uniform: decisions/s', 'Zipf: decisions/s', 'Zipf: p99', 'hot key: decisions/s', 'hot key: p99'], rows);
}

/** Hot-key mode off and on for the same path, with on/off ratios. */
export function hotKeyTable(pairs: readonly HotKeyPair[], results: ClosedResults): string {
  const rows = pairs.map((p) => {
    const off = get(results, p.off, 'hot@64')!;
    const on = get(results, p.on, 'hot@64')!;
    return [p.path, fmtRate(off.rate), fmtRate(on.rate), times(on.rate / off.rate), `${us(off.p50Ms)} / ${ms2(off.p99Ms)}`, `${us(on.p50Ms)} / ${ms2(on.p99Ms)}`, times(on.p99Ms / off.p99Ms)];
  });
  return table(['path', 'off: decisions/s', 'on: decisions/s', 'on/off', 'off: p50 / p99', 'on: p50 / p99', 'p99 on/off'], rows);
}

/** One row per contender and offered rate: what was answered, the latency percentiles, and whether it kept up. */
export function openLoopTable(contenders: readonly Contender[], results: OpenResults, peer: Contender | undefined, shares: readonly number[]): string {
  const rows: string[][] = [];
  contenders.forEach((c) => {
    results.get(c.name)?.forEach((r, i) => {
      // Against a peer that fell behind, a ratio would compare with its queue: none then.
      const peerResult = peer === undefined ? undefined : results.get(peer.name)?.[i];
      const base = peerResult?.keptUp === true ? peerResult : undefined;
      const state = r.keptUp
        ? 'yes'
        : `**no**${r.dropped > 0 ? `, ${r.dropped.toLocaleString('en-US')} dropped` : ''}${r.errors > 0 ? `, ${r.errors.toLocaleString('en-US')} failed` : ''}${r.unanswered > 0 ? `, ${r.unanswered.toLocaleString('en-US')} unanswered` : ''}`;
      rows.push([
        c.name,
        `${fmtRate(r.offered)} (${Math.round(100 * (shares[i] ?? 0))} %)`,
        fmtRate(r.answeredRate),
        `${ms2(r.p50Ms)} ${ratio(r.p50Ms, base?.p50Ms)}`,
        `${ms2(r.p99Ms)} ${ratio(r.p99Ms, base?.p99Ms)}`,
        `${ms2(r.p999Ms)} ${ratio(r.p999Ms, base?.p999Ms)}`,
        `${ms2(r.lagP50Ms)} / ${ms2(r.lagP99Ms)}`,
        state,
      ]);
    });
  });
  return table(['contender', 'offered', 'answered/s', 'p50', 'p99', 'p99.9', 'send lag p50 / p99', 'kept up'], rows);
}
