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
// Tick labels repeat from one update to the next: remember the last few.
const labels = new Map();
function timeLabel(t, windowSec) {
  const k = (windowSec <= 60 ? 's' : 'm') + t;
  let v = labels.get(k);
  if (v === undefined) {
    if (labels.size > 500) labels.clear();
    v = (windowSec <= 60 ? hms : hm).format(new Date(t * 1000));
    labels.set(k, v);
  }
  return v;
}

function theme() {
  const cs = getComputedStyle(document.documentElement);
  return { fg: cs.getPropertyValue('--fg').trim() || '#222', grid: cs.getPropertyValue('--grid').trim() || '#ddd', mark: cs.getPropertyValue('--mark').trim() || '#c00' };
}
let colors = null;
export function refreshTheme() { colors = theme(); }

// seriesPaths builds one series' line (and, for a stacked series, its band
// down to the stack below) over points i0..i1, in the series layer's device
// pixels: x = x0 + v·kx, y = y0 − v·ky. Lines break at nulls with moveTo;
// at most about one vertex pair per pixel column; nothing clips.
//
// uPlot's built-in builder breaks lines over nulls by clipping the canvas to
// the non-gap ranges and fills stacked bands through clip paths (bands); in
// Chromium's software rasterizer each such clip is a mask over the plot, and
// they were the larger half of an update's cost.
//
// Column decimation: the points that fall in one device pixel column are
// drawn as that column's first, lowest, highest and last value (fewer
// vertices when fewer points share the column). A column's pixels depend
// only on its own points and its neighbours' last/first ones, so a path
// started a few columns left of a redrawn strip draws that strip exactly as
// a path over the whole window would (see Panel.drawLayer).
function seriesPaths(xs, ys, base, x0, kx, y0, ky, i0, i1) {
  const Y = (v) => y0 - v * ky;
  const stroke = new Path2D();
  const fill = base ? new Path2D() : null;
  let col = NaN; let n = 0; let yIn = 0; let yMin = 0; let yMax = 0; let yOut = 0; let pen = false;
  let seg = []; // stacked: [x, i] of the current segment's columns, for the band
  const to = (x, y) => { if (pen) stroke.lineTo(x, y); else { stroke.moveTo(x, y); pen = true; } };
  const flush = () => {
    if (n === 0) return;
    to(col, yIn);
    if (n > 2) {
      if (yMin !== yIn && yMin !== yOut) stroke.lineTo(col, yMin);
      if (yMax !== yIn && yMax !== yOut) stroke.lineTo(col, yMax);
    }
    if (n > 1) stroke.lineTo(col, yOut);
    n = 0;
  };
  const band = () => {
    if (fill && seg.length) {
      fill.moveTo(seg[0], Y(ys[seg[1]]));
      for (let k = 2; k < seg.length; k += 2) fill.lineTo(seg[k], Y(ys[seg[k + 1]]));
      for (let k = seg.length - 2; k >= 0; k -= 2) fill.lineTo(seg[k], Y(base[seg[k + 1]]));
      fill.closePath();
    }
    seg = [];
  };
  for (let i = i0; i <= i1; i++) {
    const v = ys[i];
    if (v === null || v === undefined) {
      if (v === null) { flush(); pen = false; band(); }
      continue;
    }
    const x = Math.round(x0 + xs[i] * kx);
    const y = y0 - v * ky;
    if (n === 0 || x !== col) {
      flush();
      col = x; n = 1; yIn = yMin = yMax = yOut = y;
      if (fill) seg.push(x, i);
    } else {
      n++;
      if (y < yMin) yMin = y; else if (y > yMax) yMax = y;
      yOut = y;
      if (fill) seg[seg.length - 1] = i;
    }
  }
  flush();
  band();
  return { stroke, fill };
}

// uPlot draws no series itself (axes, grid, marks, points of a sparse new
// chart, legend and cursor stay its job): lines and bands are on the
// panel's own series layer, see Panel.drawLayer.
const noPaths = () => null;

// niceCeil: the smallest of 1, 2, 2.5, 5 × 10^k at or above v (> 0).
function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v * (1 - 1e-9)) return m * p;
  return 10 * p;
}

// fullEvery: the series layer is redrawn from scratch at least this often
// (a safety net; shifted and partial draws are exact on their own).
const fullEvery = 300;

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
    this.ranges = {};
    this.lay = null; // what the series layer holds (see drawLayer)

    const el = document.createElement('section');
    el.className = 'panel';
    const h = document.createElement('h2');
    h.textContent = this.def.title || topic;
    this.note = document.createElement('span');
    this.note.className = 'note';
    h.append(' ', this.note);
    // Hide: the chart stops drawing and its topic leaves the subscription
    // (main.js); Show: it re-loads its window.
    this.hidden = false;
    this.hideBtn = document.createElement('button');
    this.hideBtn.type = 'button';
    this.hideBtn.className = 'hide';
    this.hideBtn.textContent = 'Hide';
    this.hideBtn.setAttribute('aria-pressed', 'false');
    this.hideBtn.addEventListener('click', () => { if (this.onToggle) this.onToggle(); });
    h.append(this.hideBtn);
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
    // Live frames go into buckets of the back-fill's step (see push).
    this.step = q.step > 1 ? q.step : 0;
    this.lastT = this.xs.length ? this.xs[this.xs.length - 1] : -Infinity;
    // Start from the answer's series only: after a reset nothing of the old
    // epoch may stay on screen. Hidden series stay hidden (by key).
    this.series = [];
    this.byKey = new Map();
    this.omitted = 0;
    this.rebuild = true;
    this.ranges = {}; // sticky y ranges (see sticky), new with the data
    this.lay = null;
    (q.series || []).forEach((s, i) => {
      const col = (q.data[i + 1] || []).slice();
      const ser = this.ensure(s.name, s.labels, s.unit);
      if (ser) ser.col = col;
    });
    // The newest back-fill bucket (partial while it holds "now") takes the
    // live frames of its time as well; its value counts as one sample.
    this.open = this.step && this.xs.length ? this.xs[this.xs.length - 1] : null;
    for (const ser of this.series) ser.n = ser.col.length && ser.col[ser.col.length - 1] !== null ? 1 : 0;
    this.seqs = [];
    this.state = 'ready';
    const queued = this.queue;
    this.queue = [];
    for (const f of queued) this.push(f);
    this.trim();
    this.dirty = true;
  }

  reloading() { this.state = 'loading'; }

  setHidden(hidden) {
    this.hidden = hidden;
    this.el.classList.toggle('hidden', hidden);
    this.hideBtn.textContent = hidden ? 'Show' : 'Hide';
    this.hideBtn.setAttribute('aria-pressed', String(hidden));
    if (hidden) { this.queue = []; this.state = 'hidden'; } else this.dirty = true;
  }

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
    if (this.step) return this.pushBucket(f, id, t, lastX);
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

  // pushBucket: with a back-fill step of s > 1 seconds (windows of 5 minutes
  // and more), a live frame joins the point of its s-second bucket — the
  // running mean, like the server's avg — instead of adding a point per
  // second. The chart then holds the back-fill's resolution (about one
  // point per pixel column) however long the tab stays open, not twice or
  // three times as many points as the window had at load.
  pushBucket(f, id, t, lastX) {
    const b = Math.floor(t / this.step) * this.step;
    const last = this.xs.length - 1;
    if (this.open !== null && b === this.open && last >= 0 && this.xs[last] === b) {
      for (const smp of f.samples || []) {
        const s = this.ensure(smp.name, smp.labels);
        if (!s || typeof smp.value !== 'number') continue;
        const cur = s.col[last];
        s.n = cur === null ? 1 : (s.n || 1) + 1;
        s.col[last] = cur === null ? smp.value : cur + (smp.value - cur) / s.n;
      }
    } else {
      let x = b > lastX ? b : lastX + 0.001; // x must increase
      // No frame for over three intervals: a null point breaks the line.
      if (this.intervalMs > 0 && lastX > 0 && t - this.lastT > (3 * this.intervalMs) / 1000) {
        this.xs.push(lastX + (x - lastX) / 2);
        for (const s of this.series) s.col.push(null);
      }
      this.open = x === b ? b : null;
      this.xs.push(x);
      for (const s of this.series) { s.col.push(null); s.n = 0; }
      for (const smp of f.samples || []) {
        const s = this.ensure(smp.name, smp.labels);
        if (s && typeof smp.value === 'number') { s.col[s.col.length - 1] = smp.value; s.n = 1; }
      }
    }
    this.lastT = Math.max(this.lastT, t);
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
    // legends show the raw value (see opts().series[].value). bases[i] is
    // the stack below series i, where its band starts (see seriesPaths).
    const n = this.xs.length;
    let acc = new Float64Array(n);
    const out = [this.xs];
    this.bases = [null];
    for (const s of shown) {
      if (this.hiddenKeys.has(s.key)) { out.push(s.col); this.bases.push(null); continue; }
      const below = acc;
      acc = new Float64Array(below);
      const c = new Array(n);
      for (let i = 0; i < n; i++) { const v = s.col[i]; c[i] = v === null ? null : (acc[i] += v); }
      out.push(c);
      this.bases.push(below);
    }
    return out;
  }

  opts(width) {
    const units = [...new Set(this.series.map((s) => s.unit))];
    const u0 = units[0] || '';
    const u1 = units[1];
    const stacked = !!this.def.stacked;
    const series = [{ value: (u, v) => (v === null ? '—' : new Date(v * 1000).toLocaleTimeString()) }];
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
        paths: noPaths,
        value: raw, // uPlot's default points: drawn only while sparse (a new chart)
      });
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
        // A ratio axis ends at 100 % while the data fits under it (CPU stacked
        // by mode sums to at most one); otherwise the sticky range.
        y: { range: (u, min, max) => (u0 === 'ratio' && min >= 0 && max <= 1 ? [0, 1] : this.sticky('y', min, max)) },
        ...(u1 ? { y2: { range: (u, min, max) => this.sticky('y2', min, max) } } : {}),
      },
      series, axes,
      hooks: {
        draw: [(u) => { this.drawLayer(u); this.drawMarks(u); }],
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

  // sticky is a y scale's range: from 0 (or a negative minimum) to a round
  // number 5 % or more above the data's maximum. It grows as soon as the
  // data needs it but shrinks only when the data fell below half of it, so
  // the axes, the grid and the series layer keep their y mapping from one
  // update to the next (a changed mapping redraws the layer in full).
  sticky(key, min, max) {
    const r = this.ranges[key] || (this.ranges[key] = { lo: 0, hi: 0 });
    const hi = max > 0 ? max * 1.05 : 1;
    if (hi > r.hi || hi < r.hi / 2) r.hi = niceCeil(hi > r.hi ? hi : hi * 1.25);
    const lo = min < 0 ? -min * 1.05 : 0;
    if (lo > -r.lo || lo < -r.lo / 2) r.lo = lo > 0 ? -niceCeil(lo > -r.lo ? lo : lo * 1.25) : 0;
    return [r.lo, r.hi];
  }

  // drawLayer draws the lines and stacked bands on the series layer, a
  // canvas of the plot's size over uPlot's own (which keeps axes, grid and
  // marks). The layer is retained: when only new points arrived, its bitmap
  // moves left by the x scale's movement in whole device pixels and just the
  // strip from the last drawn point rightwards is cleared and drawn again
  // (the newest point may have changed: it is a bucket's running mean).
  // Anything else — size, window, y scales, theme, hidden series, a re-load —
  // redraws it in full. The bitmap's x mapping is the exact one rounded to
  // whole pixels: it lags or leads uPlot's by under half a pixel, never more.
  drawLayer(u) {
    let cv = this.cv;
    if (!cv || cv.parentNode !== u.over) {
      cv = this.cv = document.createElement('canvas');
      cv.className = 'series-layer';
      u.over.prepend(cv);
      this.ctx = cv.getContext('2d');
      this.lay = null;
    }
    const { width: W, height: H } = u.bbox;
    if (cv.width !== W || cv.height !== H) { cv.width = W; cv.height = H; this.lay = null; }
    const ctx = this.ctx;
    const xs = u.data[0];
    const n = xs ? xs.length : 0;
    const sx = u.scales.x;
    if (!n || !(W > 0 && H > 0) || sx.min === null || sx.max === null) { ctx.clearRect(0, 0, W, H); this.lay = null; return; }
    const kx = W / (sx.max - sx.min || 1);
    const X = -sx.min * kx; // exact: x pixel = X + v·kx
    let sig = '';
    for (let i = 1; i < u.series.length; i++) sig += u.series[i].show ? '1' : '0';
    for (const k of ['y', 'y2']) { const sc = u.scales[k]; if (sc) sig += '|' + sc.min + ',' + sc.max; }
    const L = this.lay;
    let full = !L || L.kx !== kx || L.sig !== sig || L.colors !== colors || L.draws >= fullEvery;
    let B = X; // the bitmap's x offset
    let from = 0; // first pixel column drawn
    let i0 = 0; // first point of the paths
    if (!full) {
      const shift = Math.round(L.B - X);
      B = L.B - shift;
      // The last point drawn before (j) may have changed, and so may the
      // segment into it: redraw from the column of the point before it,
      // with paths from a few columns further left.
      let j = n - 1;
      while (j > 0 && xs[j] > L.lastX) j--;
      const col = (i) => Math.round(B + xs[i] * kx);
      from = j >= 1 ? col(j - 1) - 2 : -1;
      if (shift < 0 || shift >= W || from <= 0 || from >= W) full = true;
      else {
        i0 = j - 1;
        while (i0 > 0 && col(i0) >= from - 2) i0--;
        if (shift) {
          ctx.globalCompositeOperation = 'copy';
          ctx.drawImage(cv, -shift, 0);
          ctx.globalCompositeOperation = 'source-over';
        }
      }
    }
    ctx.save();
    if (full) {
      B = X; from = 0; i0 = 0;
      ctx.clearRect(0, 0, W, H);
    } else {
      ctx.clearRect(from, 0, W - from, H);
      ctx.beginPath();
      ctx.rect(from, 0, W - from, H);
      ctx.clip();
    }
    this.paint(ctx, u, B, kx, i0);
    ctx.restore();
    this.lay = { kx, sig, colors, B, lastX: xs[n - 1], draws: full ? 0 : L.draws + 1, full: (L ? L.full : 0) + (full ? 1 : 0) };
  }

  // paint draws the shown series' paths from point i0 on, x = B + v·kx.
  paint(ctx, u, B, kx, i0) {
    const { width: W, height: H } = u.bbox;
    const xs = u.data[0];
    const n = xs.length;
    const lw = Math.round(devicePixelRatio * 1000) / 1000;
    const off = (lw % 2) / 2; // crisp 1-pixel lines, like uPlot's
    ctx.translate(off, off);
    ctx.lineWidth = lw;
    ctx.lineJoin = 'round';
    ctx.lineCap = 'butt';
    for (let i = 1; i < u.series.length; i++) {
      const s = u.series[i];
      if (!s.show) continue;
      const sy = u.scales[s.scale];
      const ky = H / (sy.max - sy.min || 1);
      const p = seriesPaths(xs, u.data[i], this.bases && this.bases[i], B, kx, H + sy.min * ky, ky, i0, n - 1);
      const color = palette[(i - 1) % palette.length];
      if (p.fill) { ctx.fillStyle = color + '55'; ctx.fill(p.fill); }
      ctx.strokeStyle = color;
      ctx.stroke(p.stroke);
    }
  }

  // layerCheck (tests): how many pixels of the series layer differ from a
  // full draw of the same data with the same x offset.
  layerCheck() {
    const u = this.u;
    if (!u || !this.lay || !this.cv) return null;
    const { width: W, height: H } = u.bbox;
    const c = document.createElement('canvas');
    c.width = W; c.height = H;
    const ctx = c.getContext('2d');
    ctx.save();
    this.paint(ctx, u, this.lay.B, this.lay.kx, 0);
    ctx.restore();
    const a = this.ctx.getImageData(0, 0, W, H).data;
    const b = ctx.getImageData(0, 0, W, H).data;
    let diff = 0;
    const at = [];
    for (let i = 0; i < a.length; i += 4) {
      // premultiplied: pixels with an alpha of a few units come back
      // from getImageData with very different colours for ±1 of alpha
      const d = (k) => Math.abs(a[k] * a[i + 3] - b[k] * b[i + 3]) / 255;
      if (d(i) > 8 || d(i + 1) > 8 || d(i + 2) > 8 || Math.abs(a[i + 3] - b[i + 3]) > 8) {
        diff++;
        if (at.length < 12) at.push([(i / 4) % W, Math.floor(i / 4 / W), a[i], a[i + 1], a[i + 2], a[i + 3], b[i], b[i + 1], b[i + 2], b[i + 3]]);
      }
    }
    return { diff, pixels: W * H, draws: this.lay.draws, fullDraws: this.lay.full, at: JSON.stringify(at) };
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
    // The width comes from the ResizeObserver (resize); reading clientWidth
    // here would force a layout per chart, right after the previous chart's
    // legend changed the DOM.
    if (!this.width) this.width = this.body.clientWidth;
    const width = Math.max(200, this.width || 400);
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
      // The legend shows the newest values unless the cursor is over the
      // chart; setting its index in the same batch writes it once.
      const u = this.u;
      u.batch(() => {
        u.setData(this.data());
        if (!(u.cursor.left >= 0)) u.setLegend({ idx: this.xs.length - 1 });
      });
    }
    const note = this.omitted ? `(${this.omitted} more series not drawn)` : '';
    if (this.note.textContent !== note) this.note.textContent = note;
    if (this.meters) this.renderMeters();
    return true;
  }

  // renderMeters keeps one row per ratio series and touches the DOM only
  // where a label or value changed.
  renderMeters() {
    const ratios = this.series.filter((s) => s.unit === 'ratio');
    const rows = this.meterRows || (this.meterRows = []);
    while (rows.length > ratios.length) rows.pop().row.remove();
    ratios.forEach((s, k) => {
      let v = null;
      for (let i = s.col.length - 1; i >= 0 && v === null; i--) v = s.col[i];
      let r = rows[k];
      if (!r) {
        const row = document.createElement('label');
        row.className = 'meter';
        const name = document.createElement('span');
        const m = document.createElement('meter');
        m.min = 0; m.max = 1; m.low = 0.8; m.high = 0.9; m.optimum = 0;
        const val = document.createElement('span');
        row.append(name, m, val);
        this.meters.append(row);
        r = rows[k] = { row, name, m, val, label: null, v: undefined };
      }
      if (r.label !== s.label) { r.label = s.label; r.name.textContent = s.label; }
      if (r.v !== v) { r.v = v; r.m.value = v ?? 0; r.val.textContent = fmt(v, 'ratio'); }
    });
  }

  // resize: width is the chart box's content width from a ResizeObserver.
  resize(width) {
    if (width > 0) this.width = Math.floor(width);
    if (this.u) this.u.setSize({ width: Math.max(200, this.width || this.body.clientWidth), height: this.height });
  }

  redraw() { if (this.u) this.u.redraw(false, true); }

  debug() {
    return {
      state: this.state, hidden: this.hidden, points: this.xs.length, series: this.series.length, lastSeq: this.lastSeq,
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
