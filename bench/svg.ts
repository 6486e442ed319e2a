/**
 * A line chart as handwritten SVG: latency (p50 solid, p99 dashed, log y axis) against
 * offered load, one colour per contender. A hollow marker is a point the contender could
 * not keep up with (its latency is then mostly queueing).
 */

export interface ChartPoint {
  offered: number;
  p50Ms: number;
  p99Ms: number;
  keptUp: boolean;
}

export interface ChartSeries {
  label: string;
  points: ChartPoint[];
}

const COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const WIDTH = 900;
const HEIGHT = 520;
const PLOT = { left: 70, top: 50, right: 600, bottom: 450 };

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(n: number): string {
  return Number(n.toFixed(2)).toString();
}

/** Milliseconds as a short axis label. */
function msLabel(ms: number): string {
  if (ms >= 1000) return `${fmt(ms / 1000)} s`;
  if (ms >= 1) return `${fmt(ms)} ms`;
  return `${fmt(ms * 1000)} µs`;
}

/** A round step giving about `count` ticks over [0, max]. */
function niceStep(max: number, count: number): number {
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = [1, 2, 2.5, 5, 10].find((u) => u * power >= raw) ?? 10;
  return unit * power;
}

export function latencyChart(title: string, subtitle: string, series: ChartSeries[]): string {
  const points = series.flatMap((s) => s.points);
  const latencies = points.flatMap((p) => [p.p50Ms, p.p99Ms]).filter((v) => Number.isFinite(v) && v > 0);
  const minDecade = Math.floor(Math.log10(Math.min(...latencies, 1)));
  const maxDecade = Math.max(minDecade + 1, Math.ceil(Math.log10(Math.max(...latencies, 1))));
  const xStep = niceStep(Math.max(...points.map((p) => p.offered), 1), 6);
  const xMax = Math.ceil((Math.max(...points.map((p) => p.offered), 1) * 1.05) / xStep) * xStep;
  const x = (offered: number): number => PLOT.left + ((PLOT.right - PLOT.left) * offered) / xMax;
  const y = (ms: number): number => PLOT.bottom - ((PLOT.bottom - PLOT.top) * (Math.log10(ms) - minDecade)) / (maxDecade - minDecade);

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${PLOT.left}" y="20" font-size="15" font-weight="bold">${escape(title)}</text>`,
    `<text x="${PLOT.left}" y="38" fill="#555">${escape(subtitle)}</text>`,
  ];
  // Y grid: 1, 2, 5 in every decade; labels on the decades.
  for (let d = minDecade; d <= maxDecade; d++) {
    for (const m of [1, 2, 5]) {
      const ms = m * 10 ** d;
      if (Math.log10(ms) > maxDecade + 1e-9) continue;
      const yy = fmt(y(ms));
      out.push(`<line x1="${PLOT.left}" y1="${yy}" x2="${PLOT.right}" y2="${yy}" stroke="${m === 1 ? '#bbb' : '#eee'}"/>`);
      if (m === 1 || maxDecade - minDecade <= 3) out.push(`<text x="${PLOT.left - 6}" y="${fmt(y(ms) + 4)}" text-anchor="end">${escape(msLabel(ms))}</text>`);
    }
  }
  for (let v = 0; v <= xMax + 1e-9; v += xStep) {
    const xx = fmt(x(v));
    out.push(`<line x1="${xx}" y1="${PLOT.top}" x2="${xx}" y2="${PLOT.bottom}" stroke="#eee"/>`);
    out.push(`<text x="${xx}" y="${PLOT.bottom + 18}" text-anchor="middle">${v === 0 ? '0' : `${fmt(v / 1000)}k`}</text>`);
  }
  out.push(`<rect x="${PLOT.left}" y="${PLOT.top}" width="${PLOT.right - PLOT.left}" height="${PLOT.bottom - PLOT.top}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${(PLOT.left + PLOT.right) / 2}" y="${PLOT.bottom + 40}" text-anchor="middle">offered load (decisions/s, open loop)</text>`);
  out.push(`<text transform="translate(18 ${(PLOT.top + PLOT.bottom) / 2}) rotate(-90)" text-anchor="middle">latency from scheduled send (log scale)</text>`);

  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    const sorted = s.points.slice().sort((a, b) => a.offered - b.offered);
    for (const [field, dash] of [['p50Ms', ''], ['p99Ms', ' stroke-dasharray="6 4"']] as const) {
      const valid = sorted.filter((p) => Number.isFinite(p[field]) && p[field] > 0);
      if (valid.length === 0) continue;
      const path = valid.map((p) => `${fmt(x(p.offered))},${fmt(y(p[field]))}`).join(' ');
      out.push(`<polyline points="${path}" fill="none" stroke="${colour}" stroke-width="2"${dash}/>`);
      for (const p of valid) {
        out.push(`<circle cx="${fmt(x(p.offered))}" cy="${fmt(y(p[field]))}" r="4" stroke="${colour}" stroke-width="2" fill="${p.keptUp ? colour : 'white'}"/>`);
      }
    }
    const ly = PLOT.top + 10 + i * 22;
    out.push(`<line x1="${PLOT.right + 20}" y1="${ly}" x2="${PLOT.right + 50}" y2="${ly}" stroke="${colour}" stroke-width="3"/>`);
    out.push(`<text x="${PLOT.right + 58}" y="${ly + 4}">${escape(s.label)}</text>`);
  });
  const ky = PLOT.top + 10 + series.length * 22 + 16;
  out.push(`<line x1="${PLOT.right + 20}" y1="${ky}" x2="${PLOT.right + 50}" y2="${ky}" stroke="#333" stroke-width="2"/>`);
  out.push(`<text x="${PLOT.right + 58}" y="${ky + 4}">p50</text>`);
  out.push(`<line x1="${PLOT.right + 20}" y1="${ky + 20}" x2="${PLOT.right + 50}" y2="${ky + 20}" stroke="#333" stroke-width="2" stroke-dasharray="6 4"/>`);
  out.push(`<text x="${PLOT.right + 58}" y="${ky + 24}">p99</text>`);
  out.push(`<circle cx="${PLOT.right + 35}" cy="${ky + 42}" r="4" stroke="#333" stroke-width="2" fill="white"/>`);
  out.push(`<text x="${PLOT.right + 58}" y="${ky + 46}">could not keep up (queue grew)</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
