// charts.js — one Panel per topic: its data window, its uPlot chart, and the
// exact seam between back-fill and live frames.
//
// Seam rule: a panel is loaded from /api/v1/query, whose `last` is the head
// the query read up to. Live frames with seq <= last are already inside the
// back-fill and are dropped; every later frame is appended once. Frames that
// arrive while a (re)load is in flight are queued and replayed after it, so a
// window change or a reset never loses or doubles a point.
import { parseId } from './client.js';
import { fmt, unitKind } from './format.js';

const U = () => globalThis.uPlot;

// Known collectors: title, which series to draw, how to label them. Anything
// else gets the generic defaults (every series, labelled by its labels).
const only = (...names) => (s) => names.includes(s.name);
const topicDefaults = {
  cpu: {
    // "Where the time goes": total CPU stacked by mode, idle left out so the
    // top of the stack is the busy share. Per-core series would be dozens of
    // lines; they stay in the API.
    title: 'CPU', stacked: true,
    filter: (s) => s.labels.mode !== 'idle' && (s.labels.cpu === 'total' || !('cpu' in s.labels)),
  },
  // Memory as a stack of what fills it (used + buffers + cached + free = total).
  memory: { title: 'Memory', stacked: true, filter: only('memory_used_bytes', 'memory_buffers_bytes', 'memory_cached_bytes', 'memory_free_bytes') },
  load: { title: 'Load average', filter: only('load1', 'load5', 'load15') },
  network: { title: 'Network', filter: (s) => /^network_(receive|transmit)_bytes_per_second$/.test(s.name) },
  disk: { title: 'Disk I/O', filter: only('disk_read_bytes_per_second', 'disk_written_bytes_per_second') },
  filesystem: { title: 'Filesystems', meters: true, filter: only('filesystem_used_ratio') },
  http: { title: 'HTTP probes' },
  probe: { title: 'Probes' },
  prometheus: { title: 'Scraped targets' },
  system: { title: 'System', filter: (s) => /_per_second$/.test(s.name) },
  self: { title: 'livedash itself', filter: only('self_cpu_usage_ratio', 'self_memory_bytes', 'self_heap_bytes') },
  synthetic: { title: 'Synthetic' },
};
export const topicOrder = Object.keys(topicDefaults);

const maxSeries = 24; // more lines than this are unreadable; the API has them all
const maxSeqs = 20000; // seq history kept for the debug hook

// Colours readable on both themes.
const palette = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

export function seriesKey(name, labels) {
  const ks = Object.keys(labels || {}).sort();
  return name + '{' + ks.map((k) => k + '=' + JSON.stringify(labels[k])).join(',') + '}';
}

// label: the shortest text that tells series of one topic apart.
function labelFor(topic, s, all) {
  const short = (n) => n.replace(new RegExp('^' + topic + '_'), '').replace(/_(bytes_per_second|per_second|bytes|seconds|ratio|total)$/, '');
  const vals = Object.keys(s.labels || {}).sort().filter((k) => !(topic === 'cpu' && k === 'cpu' && s.labels[k] === 'total')).map((k) => s.labels[k]);
  const sameName = all.every((x) => x.name === s.name);
  if (sameName && vals.length) return vals.join(' ');
  return [short(s.name), ...vals].join(' ');
}

const hm = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const hms = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
function timeLabel(t, windowSec) { return (windowSec <= 60 ? hms : hm).format(new Date(t * 1000)); }

function theme() {
  const cs = getComputedStyle(document.documentElement);
  return { fg: cs.getPropertyValue('--fg').trim() || '#222', grid: cs.getPropertyValue('--grid').trim() || '#ddd', mark: cs.getPropertyValue('--mark').trim() || '#c00' };
}
let colors = null;
export function refreshTheme() { colors = theme(); }

export class Panel {
  constructor(topic, parent, { windowSec, catalog = [], height = 220, before = null, intervalMs = 0 }) {
    this.intervalMs = intervalMs;
    this.topic = topic;
    this.def = topicDefaults[topic] || {};
    this.windowSec = windowSec;
    this.height = height;
    this.catalog = catalog; // [{name, labels, unit}] from /api/v1/series
    this.state = 'loading';
    this.queue = [];
    this.lastSeq = -1;
    this.epoch = null;
    this.xs = [];
    this.series = []; // [{key, name, labels, unit, label, col:[], shown}]
    this.byKey = new Map();
    this.hiddenKeys = new Set();
    this.seqs = [];
    this.marks = []; // times (s) of resets/gaps, drawn as dashed lines
    this.dirty = false;
    this.onScreen = true; // main.js keeps it current (IntersectionObserver)
    this.dups = 0;
    this.u = null;

    const el = document.createElement('section');
    el.className = 'panel';
    const h = document.createElement('h2');
    h.textContent = this.def.title || topic;
    this.note = document.createElement('span');
    this.note.className = 'note';
    h.append(' ', this.note);
    this.body = document.createElement('div');
    this.body.className = 'chart';
    el.append(h, this.body);
    if (this.def.meters) {
      this.meters = document.createElement('div');
      this.meters.className = 'meters';
      el.append(this.meters);
    }
    parent.insertBefore(el, before);
    this.el = el;
  }

  // load replaces the panel's data with a /api/v1/query answer.
  load(q) {
    const last = parseId(q.last);
    this.lastSeq = last ? last.seq : -1;
    this.epoch = last ? last.epoch : null;
    this.xs = (q.data && q.data[0] ? q.data[0] : []).slice();
    // Start from the answer's series only: after a reset nothing of the old
    // epoch may stay on screen. Hidden series stay hidden (by key).
    this.series = [];
    this.byKey = new Map();
    this.omitted = 0;
    this.rebuild = true;
    (q.series || []).forEach((s, i) => {
      const col = (q.data[i + 1] || []).slice();
      const ser = this.ensure(s.name, s.labels, s.unit);
      if (ser) ser.col = col;
    });
    this.seqs = [];
    this.state = 'ready';
    const queued = this.queue;
    this.queue = [];
    for (const f of queued) this.push(f);
    this.trim();
    this.dirty = true;
  }

  reloading() { this.state = 'loading'; }

  // ensure returns the series for (name, labels), adding it (null-filled for
  // earlier times) when it is new and the topic's filter keeps it.
  ensure(name, labels, unit) {
    const key = seriesKey(name, labels);
    let s = this.byKey.get(key);
    if (s !== undefined) return s;
    const cand = { key, name, labels: labels || {}, unit: unitKind(unit, name) };
    const all = [...this.series, cand];
    const units = new Set(all.map((x) => x.unit));
    // Two y axes at most (left: the first unit seen, right: the second).
    if ((this.def.filter && !this.def.filter(cand, all)) || units.size > 2 || this.series.length >= maxSeries) {
      this.byKey.set(key, null);
      if (this.series.length >= maxSeries) this.omitted = (this.omitted || 0) + 1;
      return null;
    }
    cand.col = new Array(this.xs.length).fill(null);
    this.series.push(cand);
    this.byKey.set(key, cand);
    for (const s2 of this.series) s2.label = labelFor(this.topic, s2, this.series);
    this.rebuild = true; // new line: the chart is re-created on the next render
    return cand;
  }

  // push appends one live frame; returns false when the frame was dropped
  // (already in the window, or from another epoch — a reset follows).
  push(f) {
    if (this.state !== 'ready') { this.queue.push(f); return true; }
    const id = parseId(f.id);
    if (!id) return false;
    if (this.epoch !== null && id.epoch !== this.epoch) return false;
    if (id.seq <= this.lastSeq) { this.dups++; return false; }
    this.lastSeq = id.seq;
    this.epoch = id.epoch;
    let t = f.ts / 1000;
    const lastX = this.xs.length ? this.xs[this.xs.length - 1] : -Infinity;
    if (!(t > lastX)) t = lastX + 0.001; // x must increase; order is by seq, not clock
    // No frame for over three intervals (server down, collector stalled):
    // a null point breaks the line instead of drawing across the hole.
    if (this.intervalMs > 0 && lastX > 0 && t - lastX > (3 * this.intervalMs) / 1000) {
      this.xs.push(lastX + this.intervalMs / 1000);
      for (const s of this.series) s.col.push(null);
    }
    this.xs.push(t);
    for (const s of this.series) s.col.push(null);
    for (const smp of f.samples || []) {
      const s = this.ensure(smp.name, smp.labels);
      if (s) s.col[s.col.length - 1] = typeof smp.value === 'number' ? smp.value : null;
    }
    this.seqs.push(id.seq);
    if (this.seqs.length > maxSeqs) this.seqs.splice(0, this.seqs.length - maxSeqs);
    if (this.xs.length % 64 === 0) this.trim();
    this.dirty = true;
    return true;
  }

  // trim drops points older than the window (plus 5 % slack so the left
  // edge never shows a hole while the axis slides).
  trim() {
    if (!this.xs.length) return;
    const min = this.xs[this.xs.length - 1] - this.windowSec * 1.05;
    let i = 0;
    while (i < this.xs.length && this.xs[i] < min) i++;
    if (i === 0) return;
    this.xs.splice(0, i);
    for (const s of this.series) s.col.splice(0, i);
    this.marks = this.marks.filter((m) => m >= min);
  }

  mark(tSec) { this.marks.push(tSec); this.dirty = true; }

  data() {
    const shown = this.series;
    if (!this.def.stacked) return [this.xs, ...shown.map((s) => s.col)];
    // Stacked: each line is the running sum of the visible series below it;
    // legends show the raw value (see opts().series[].value).
    const acc = new Float64Array(this.xs.length);
    const out = [this.xs];
    for (const s of shown) {
      if (this.hiddenKeys.has(s.key)) { out.push(s.col); continue; }
      const c = new Array(this.xs.length);
      for (let i = 0; i < c.length; i++) { const v = s.col[i]; c[i] = v === null ? null : (acc[i] += v); }
      out.push(c);
    }
    return out;
  }

  opts(width) {
    const units = [...new Set(this.series.map((s) => s.unit))];
    const u0 = units[0] || '';
    const u1 = units[1];
    const stacked = !!this.def.stacked;
    const series = [{ value: (u, v) => (v === null ? '—' : new Date(v * 1000).toLocaleTimeString()) }];
    const bands = [];
    let below = 0;
    this.series.forEach((s, i) => {
      const color = palette[i % palette.length];
      const raw = (u, v, si, idx) => fmt(idx === null || idx === undefined ? null : s.col[idx], s.unit);
      series.push({
        label: s.label,
        scale: s.unit === u0 || !u1 ? 'y' : 'y2',
        stroke: color,
        width: 1,
        fill: stacked ? color + '55' : undefined,
        show: !this.hiddenKeys.has(s.key),
        spanGaps: false,
        value: raw, // uPlot's default points: drawn only while sparse (a new chart)
      });
      if (stacked) {
        if (below) bands.push({ series: [i + 1, below] });
        below = i + 1;
      }
    });
    const win = this.windowSec;
    const axisStroke = () => colors.fg;
    const grid = { stroke: () => colors.grid, width: 1 };
    const axes = [
      { stroke: axisStroke, grid, ticks: grid, space: 70, values: (u, t) => t.map((v) => timeLabel(v, win)) },
      { stroke: axisStroke, grid, ticks: grid, size: 90, values: (u, t) => t.map((v) => fmt(v, u0)) },
    ];
    if (u1) axes.push({ scale: 'y2', side: 1, stroke: axisStroke, grid: { show: false }, size: 90, values: (u, t) => t.map((v) => fmt(v, u1)) });
    return {
      width, height: this.height,
      cursor: { sync: { key: 'livedash', setSeries: false }, points: { show: false } },
      legend: { live: true },
      scales: {
        x: { time: true, range: (u, min, max) => [max - win, max] },
        y: { range: (u, min, max) => (u0 === 'ratio' && !stacked ? [0, Math.max(1, max)] : [Math.min(0, min), max > 0 ? max * 1.05 : 1]) },
        ...(u1 ? { y2: { range: (u, min, max) => [Math.min(0, min), max > 0 ? max * 1.05 : 1] } } : {}),
      },
      series, axes, bands,
      hooks: {
        draw: [(u) => this.drawMarks(u)],
        setSeries: [(u, i, o) => {
          // legend click: remember per key (survives re-creation) and re-stack
          if (i && o && 'show' in o) {
            const s = this.series[i - 1];
            if (o.show) this.hiddenKeys.delete(s.key); else this.hiddenKeys.add(s.key);
            if (stacked) { this.dirty = true; }
          }
        }],
        setCursor: [(u) => { if (u.cursor.idx === null || u.cursor.idx === undefined) this.showLatest(u); }],
      },
    };
  }

  showLatest(u) {
    const n = this.xs.length;
    if (n && u.cursor.left < 0) u.setLegend({ idx: n - 1 });
  }

  drawMarks(u) {
    if (!this.marks.length) return;
    const { ctx, bbox } = u;
    ctx.save();
    ctx.strokeStyle = colors.mark;
    ctx.setLineDash([4, 4]);
    ctx.lineWidth = 1;
    for (const m of this.marks) {
      const x = Math.round(u.valToPos(m, 'x', true));
      if (x < bbox.left || x > bbox.left + bbox.width) continue;
      ctx.beginPath();
      ctx.moveTo(x, bbox.top);
      ctx.lineTo(x, bbox.top + bbox.height);
      ctx.stroke();
    }
    ctx.restore();
  }

  // render draws pending changes; the caller skips it while the tab is hidden
  // or paused. Cost is one setData (uPlot redraws the canvas).
  render() {
    if (!this.dirty || this.state !== 'ready') return false;
    this.dirty = false;
    const t0 = performance.now();
    try { return this.draw(); } finally { this.lastRenderMs = performance.now() - t0; }
  }

  draw() {
    const width = Math.max(200, this.body.clientWidth || 400);
    if (!this.u || this.rebuild) {
      this.rebuild = false;
      this.builds = (this.builds || 0) + 1;
      if (this.u) this.u.destroy();
      this.body.textContent = '';
      if (!this.series.length) {
        const p = document.createElement('p');
        p.className = 'empty';
        p.textContent = 'waiting for data…';
        this.body.append(p);
        this.u = null;
        return true;
      }
      this.u = new (U())(this.opts(width), this.data(), this.body);
      this.showLatest(this.u);
    } else {
      // batch: draw now rather than in uPlot's microtask, so the caller can
      // time each chart and keep a frame within its budget.
      this.u.batch(() => { this.u.setData(this.data()); });
    }
    this.note.textContent = this.omitted ? `(${this.omitted} more series not drawn)` : '';
    if (this.meters) this.renderMeters();
    return true;
  }

  renderMeters() {
    const ratios = this.series.filter((s) => s.unit === 'ratio');
    this.meters.textContent = '';
    for (const s of ratios) {
      let v = null;
      for (let i = s.col.length - 1; i >= 0 && v === null; i--) v = s.col[i];
      const row = document.createElement('label');
      row.className = 'meter';
      const name = document.createElement('span');
      name.textContent = s.label;
      const m = document.createElement('meter');
      m.min = 0; m.max = 1; m.low = 0.8; m.high = 0.9; m.optimum = 0;
      m.value = v ?? 0;
      const val = document.createElement('span');
      val.textContent = fmt(v, 'ratio');
      row.append(name, m, val);
      this.meters.append(row);
    }
  }

  resize() {
    if (this.u) this.u.setSize({ width: Math.max(200, this.body.clientWidth), height: this.height });
  }

  redraw() { if (this.u) this.u.redraw(false, true); }

  debug() {
    return {
      state: this.state, points: this.xs.length, series: this.series.length, lastSeq: this.lastSeq,
      epoch: this.epoch, seqs: this.seqs.slice(), dups: this.dups, marks: this.marks.length,
      firstX: this.xs[0] ?? null, lastX: this.xs[this.xs.length - 1] ?? null,
      firstDataX: this.xs.find((x, i) => this.series.some((s) => s.col[i] !== null)) ?? null,
      monotonic: this.xs.every((x, i) => i === 0 || x > this.xs[i - 1]),
      labels: this.series.map((s) => s.label), builds: this.builds || 0, lastRenderMs: this.lastRenderMs,
      hidden: this.series.filter((s) => this.hiddenKeys.has(s.key)).map((s) => s.label),
      drawnHidden: this.u ? this.u.series.slice(1).filter((s) => !s.show).length : 0,
    };
  }
}
